"""Field-by-field differences between two outputs (HL7 messages or records).

Used by the what-if replay and anywhere an analyst needs "what changed" in their own
terms: ``OBR[1]-4.2: "CT HEAD" → "CT HEAD W/O"`` or ``ScheduledProcedureStepSequence[0].
Modality: "CT" → "MR"``. MSH-7 (time of the message) and MSH-10 (control id) are made
fresh by every run of a template, so they are ignored by default.
"""

from __future__ import annotations

from typing import Any

from engine.hl7 import HL7Message, HL7ParseError
from engine.router import Filtered, decode

VOLATILE = frozenset({"MSH-7", "MSH-10"})


def _segments(msg: HL7Message) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    counts: dict[str, int] = {}
    for seg in msg.segments():
        counts[seg.name] = counts.get(seg.name, 0) + 1
        out[(seg.name, counts[seg.name])] = seg.fields
    return out


def hl7_diff(old: bytes, new: bytes, ignore: frozenset[str] = VOLATILE) -> list[str]:
    try:
        a = HL7Message.parse(decode(old, "utf-8")[0])
        b = HL7Message.parse(decode(new, "utf-8")[0])
    except HL7ParseError as exc:
        return [] if old == new else [f"(not HL7: {exc.reason})"]
    comp_sep = a.delimiters.component
    sa, sb = _segments(a), _segments(b)
    changes: list[str] = []
    for key in list(sa) + [k for k in sb if k not in sa]:
        name, occ = key
        label = f"{name}[{occ}]" if occ > 1 or (name, 2) in sa or (name, 2) in sb else name
        fa, fb = sa.get(key), sb.get(key)
        if fa is None:
            changes.append(f"{label}: segment added")
            continue
        if fb is None:
            changes.append(f"{label}: segment removed")
            continue
        for i in range(1, max(len(fa), len(fb))):
            va = fa[i] if i < len(fa) else ""
            vb = fb[i] if i < len(fb) else ""
            if va == vb or f"{name}-{i}" in ignore:
                continue
            ca, cb = va.split(comp_sep), vb.split(comp_sep)
            if len(ca) == len(cb) == 1:
                changes.append(f'{label}-{i}: "{va}" → "{vb}"')
                continue
            for j in range(max(len(ca), len(cb))):
                xa = ca[j] if j < len(ca) else ""
                xb = cb[j] if j < len(cb) else ""
                if xa != xb:
                    changes.append(f'{label}-{i}.{j + 1}: "{xa}" → "{xb}"')
    return changes


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        if not value:
            out[prefix] = []
    else:
        out[prefix] = value
    return out


def record_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    fa, fb = flatten(old), flatten(new)
    changes = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        if key not in fb:
            changes.append(f"{key}: {fa[key]!r} removed")
        elif key not in fa:
            changes.append(f"{key}: {fb[key]!r} added")
        elif fa[key] != fb[key]:
            changes.append(f"{key}: {fa[key]!r} → {fb[key]!r}")
    return changes


def output_diff(old: Any, new: Any) -> list[str]:
    """Differences between two destination outputs (bytes, records or filter markers)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return record_diff(old, new)
    if isinstance(old, bytes | bytearray) and isinstance(new, bytes | bytearray):
        return hl7_diff(bytes(old), bytes(new))
    return [] if old == new else [f"{_kind(old)} → {_kind(new)}"]


def _kind(v: Any) -> str:
    if isinstance(v, Filtered):
        return f"filtered ({v.reason})"
    return "HL7 payload" if isinstance(v, bytes | bytearray) else "record"
