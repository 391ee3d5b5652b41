"""Exceptions raised by the HL7 v2 core.

``HL7ParseError`` carries an HL7 table 0357 error code so that the ACK builder can
report the problem in ERR-3 without guessing.  The engine-wide ``engine/errors.py``
re-exports these classes; import them from there in code outside ``engine.hl7``.
"""

from __future__ import annotations

__all__ = ["ERROR_CODE_TEXT", "HL7EncodeError", "HL7ParseError"]

#: HL7 table 0357 (message error condition codes) used by this package.
ERROR_CODE_TEXT: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


class HL7ParseError(ValueError):
    """A message could not be parsed.

    ``reason`` is a human-readable sentence (safe to put in MSA-3/ERR-8: it never
    contains field values beyond the offending MSH-2 or segment name),
    ``error_code`` an HL7 table 0357 code and ``location`` an optional ERL-style
    location such as ``"MSH^1^2"`` (component separator ``^``).
    """

    def __init__(self, reason: str, error_code: str = "207", location: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_code = error_code
        self.location = location

    def __reduce__(self) -> tuple[type[HL7ParseError], tuple[str, str, str]]:
        return (type(self), (self.reason, self.error_code, self.location))


class HL7EncodeError(ValueError):
    """Outbound text contains a character the target charset cannot represent."""

    def __init__(self, codec: str, position: int, character: str) -> None:
        self.codec = codec
        self.position = position
        self.character = character
        super().__init__(
            f"cannot encode character {character!r} (U+{ord(character):04X}) at position "
            f"{position} with codec {codec!r}; use encode_text(..., errors='hl7') to send it "
            "as an HL7 \\Xhh\\ escape or choose a Unicode MSH-18"
        )

    def __reduce__(self) -> tuple[type[HL7EncodeError], tuple[str, int, str]]:
        return (type(self), (self.codec, self.position, self.character))
