"""The declared shape of a mapping file: top-level keys and, per step kind, its keys.

The compiler rejects unknown keys with a suggestion, and lint, the README and tests all
read these tables, so a new key is declared in exactly one place.
"""

from __future__ import annotations

__all__ = ["INPUTS", "LENGTH_POLICIES", "OUTPUTS", "STEP_KINDS", "TOP_KEYS"]

#: top-level key → what it holds
TOP_KEYS: dict[str, str] = {
    "mapping": "the mapping's name (usually the file name without .yaml)",
    "description": "free text for people",
    "input": "hl7 | record",
    "output": "record | hl7",
    "hl7_versions": "HL7 versions the mapping is written for; lint checks paths against them",
    "record_keywords": "dicom: lint checks record paths against the DICOM dictionary",
    "params": "named settings with defaults ($name), overridable per channel and per test",
    "length_policy": "reject | truncate: what max_length does by default",
    "tables": "lookup tables: name → file or {file, key, value, ignore_case} or {values}",
    "template": "HL7 text the output message starts from (output: hl7)",
    "steps": "the steps, run in order",
}

_SOURCES = ("from", "value", "concat", "separator", "skip_empty", "ops", "default", "required")

#: step kind → the other keys it accepts
STEP_KINDS: dict[str, tuple[str, ...]] = {
    "set": (*_SOURCES, "max_length", "on_overflow", "when"),
    "let": (*_SOURCES, "when"),
    "copy": ("to", "when"),
    "foreach": ("into", "steps", "when"),
    "filter": ("when",),
    "reject": ("when", "error_code", "location"),
    "route": ("when",),
}

INPUTS = ("hl7", "record")
OUTPUTS = ("record", "hl7")
LENGTH_POLICIES = ("reject", "truncate")
