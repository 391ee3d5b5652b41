"""Sans-I/O HL7 v2 core: lazy parsing, paths, escaping, charsets and acknowledgements.

Nothing here does I/O.  ``engine.hl7.reference`` (hl7apy-backed validation) is not
imported here so the hot path never pays for loading hl7apy.
"""

from engine.hl7.ack import (
    build_ack,
    expected_ack_mode,
    should_send_accept_ack,
    should_send_application_ack,
)
from engine.hl7.ackinfo import AckInfo, parse_ack
from engine.hl7.build import new_message
from engine.hl7.charsets import Decoded, codec_for, decode_message, encode_text, sniff_msh18
from engine.hl7.delimiters import Delimiters
from engine.hl7.errors import HL7EncodeError, HL7ParseError
from engine.hl7.escaping import escape, unescape
from engine.hl7.ids import new_control_id
from engine.hl7.message import HL7Message
from engine.hl7.paths import Path
from engine.hl7.segment import Segment
from engine.hl7.versions import is_known_version

__all__ = [
    "AckInfo",
    "Decoded",
    "Delimiters",
    "HL7EncodeError",
    "HL7Message",
    "HL7ParseError",
    "Path",
    "Segment",
    "build_ack",
    "codec_for",
    "decode_message",
    "encode_text",
    "escape",
    "expected_ack_mode",
    "is_known_version",
    "new_control_id",
    "new_message",
    "parse_ack",
    "should_send_accept_ack",
    "should_send_application_ack",
    "sniff_msh18",
    "unescape",
]
