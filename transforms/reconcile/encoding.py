"""Encoding and length defects: is the difference between two values charset damage or
truncation, rather than a different value?

Only a defect that explains the *whole* difference counts (case aside), so a damaged value
that also differs otherwise is still reported as a plain mismatch by ``compare``:

- replacement characters (U+FFFD, from a decoder that met bytes it could not read) on one
  side where the other has non-ASCII letters, the ASCII letters around them equal;
- ``?`` (the normaliser's ``unknown_chars``) in place of non-ASCII letters, same length;
- mojibake: UTF-8 text read as Latin-1 / Windows-1252 (``MÃ¼LLER`` for ``MÜLLER``);
- truncation: exactly the VR maximum long on one side, longer with that start on the other.

Pure and cheap: two ASCII values differing in length only reach one comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.reconcile.rules import ReconcileRules


@dataclass(frozen=True, slots=True)
class Defect:
    """What is wrong (``what``) and on which side (``order`` or ``study``)."""

    what: str
    side: str


def _replaced(bad: str, good: str, marks: str) -> bool:
    """``bad`` is ``good`` with its non-ASCII characters turned into ``marks``."""
    if not any(c in marks for c in bad) or good.isascii():
        return False
    skeleton_bad = "".join(c for c in bad if c not in marks)
    skeleton_good = "".join(c for c in good if c.isascii())
    return skeleton_bad.upper() == skeleton_good.upper()


def _questioned(bad: str, good: str, unknown: str) -> bool:
    """``bad`` has ``?`` exactly where ``good`` has non-ASCII letters."""
    if not unknown or len(bad) != len(good):
        return False
    hit = False
    for x, y in zip(bad, good, strict=True):
        if x == y or x.upper() == y.upper():  # per character: "ß".upper() is "SS"
            continue
        if x in unknown and not y.isascii():
            hit = True
            continue
        return False
    return hit


def _mojibake(bad: str, good: str) -> bool:
    """``bad`` is ``good`` encoded as UTF-8 and decoded as a single-byte charset (both as
    received: folding case first would change the bytes)."""
    data = good.encode("utf-8")
    for charset in ("latin-1", "cp1252"):
        try:
            if data.decode(charset).upper() == bad.upper():
                return True
        except UnicodeDecodeError:
            continue
    return False


def _truncated(short: str, long: str, max_length: int) -> bool:
    return 0 < max_length == len(short) < len(long) and long.startswith(short)


def defect(order_value: str, study_value: str, max_length: int, rules: ReconcileRules
           ) -> Defect | None:
    """The defect that explains why two (stripped) values differ, if one does. Case is
    ignored, character by character (``"ß".upper()`` is two characters)."""
    a, b = order_value, study_value
    if a == b:
        return None
    if max_length and max_length == min(len(a), len(b)):
        if _truncated(a.upper(), b.upper(), max_length):
            return Defect(f"truncated at {max_length} characters", "order")
        if _truncated(b.upper(), a.upper(), max_length):
            return Defect(f"truncated at {max_length} characters", "study")
    if a.isascii() and b.isascii():
        return None
    cfg = rules.encoding
    unknown = rules.normalise.patient_name.unknown_chars
    for bad, good, side in ((a, b, "order"), (b, a, "study")):
        if cfg.replacement_chars and _replaced(bad, good, cfg.replacement_chars):
            return Defect("unreadable characters replaced (U+FFFD)", side)
        if _questioned(bad, good, unknown):
            return Defect("'?' in place of non-ASCII letters", side)
        if cfg.mojibake and _mojibake(bad, good):
            return Defect("UTF-8 read as a single-byte character set", side)
    return None
