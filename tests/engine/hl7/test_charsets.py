"""Charsets: table 0211 mapping, MSH-18 sniffing, lossless/lossy decoding, strict encoding."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.hl7 import (
    HL7EncodeError,
    HL7Message,
    codec_for,
    decode_message,
    encode_text,
    sniff_msh18,
    unescape,
)
from engine.hl7.charsets import _ALIASES, _TABLE_0211
from engine.hl7.delimiters import DEFAULT_DELIMITERS

from .conftest import fixture_bytes

HEADER = "MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|20261122||ORM^O01|M1|P|2.5||||||"


@pytest.mark.parametrize(
    ("msh18", "codec"),
    [
        ("", "ascii"),
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("8859/2", "iso8859-2"),
        ("8859/9", "iso8859-9"),
        ("8859/15", "iso8859-15"),
        ("UNICODE UTF-8", "utf-8"),
        ("UNICODE", "utf-8"),
        ("UTF-8", "utf-8"),
        ("unicode utf-8", "utf-8"),
        ("UNICODE UTF-16", "utf-16"),
        ("UNICODE UTF-32", "utf-32"),
        ("ISO IR14", "shift_jis"),
        ("ISO IR87", "iso2022_jp"),
        ("ISO IR159", "iso2022_jp_2"),
        ("GB 18030-2000", "gb18030"),
        ("KS X 1001", "euc_kr"),
        ("CNS 11643-1992", "big5"),
        ("BIG-5", "big5"),
        ("ISO_IR 100", "iso8859-1"),
        (" 8859/1 ", "iso8859-1"),
        ("EBCDIC-42", "cp1252"),
    ],
)
def test_codec_for_table_0211(msh18: str, codec: str) -> None:
    assert codec_for(msh18, "cp1252") == codec


def test_every_mapped_codec_exists() -> None:
    for codec in [*_TABLE_0211.values(), *_ALIASES.values()]:
        codecs.lookup(codec)


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_sniff_msh18_any_line_ending(sep: bytes) -> None:
    raw = (HEADER + "8859/1").encode() + sep + b"PID|1||X||M\xfcller" + sep
    assert sniff_msh18(raw) == "8859/1"


def test_sniff_msh18_first_repetition_and_component_only() -> None:
    assert sniff_msh18((HEADER + "ISO IR87^x~ISO IR159\rPID|1").encode()) == "ISO IR87"
    assert sniff_msh18((HEADER + "~ISO IR87\r").encode()) == ""


def test_sniff_msh18_absent_or_unparseable() -> None:
    assert sniff_msh18(b"MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1") == ""
    assert sniff_msh18(b"") == ""
    assert sniff_msh18(b"PID|1") == ""
    assert sniff_msh18(fixture_bytes("binary_junk.bin")) == ""
    assert sniff_msh18((HEADER + "8859/1").encode().replace(b"|2.5|", b"|2.5\r")) == ""


@pytest.mark.parametrize(
    ("bom_codec", "expected"),
    [("utf-8-sig", "UNICODE UTF-8"), ("utf-16", "UNICODE UTF-16"),
     ("utf-16-be", "UNICODE UTF-16"), ("utf-32", "UNICODE UTF-32"),
     ("utf-32-be", "UNICODE UTF-32")],
)
def test_sniff_msh18_boms_and_wide_encodings(bom_codec: str, expected: str) -> None:
    raw = (HEADER + "8859/1\rPID|1").encode(bom_codec)
    assert sniff_msh18(raw) == expected
    decoded = decode_message(raw)
    assert decoded.text.startswith("MSH|")
    assert HL7Message.parse(decoded.text).charset == "8859/1"
    assert not decoded.lossy


def test_decode_latin1_fixture() -> None:
    raw = fixture_bytes("orm_o01_latin1_v231.hl7")
    decoded = decode_message(raw, fallback="utf-8")
    assert decoded.codec == "iso8859-1"
    assert not decoded.lossy
    m = HL7Message.parse(decoded.text)
    assert m.get("PID-5.1") == "Müller-Schröder"
    assert m.get("PID-5.2") == "Jürgen"
    assert m.get("OBR-4.2") == "CHEST PA & LATERAL"


def test_decode_utf8_declared() -> None:
    raw = (HEADER + "UNICODE UTF-8\rPID|1||X||Ünal^Zoë").encode()
    decoded = decode_message(raw)
    assert decoded == (raw.decode(), "utf-8", False)


def test_decode_bad_bytes_is_lossy_not_an_error() -> None:
    raw = (HEADER + "UNICODE UTF-8\rPID|1||X||").encode() + b"M\xfcller"
    decoded = decode_message(raw)
    assert decoded.codec == "utf-8"
    assert decoded.lossy
    assert decoded.text.endswith("M\ufffdller")


def test_decode_without_msh18_uses_fallback() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1||X||M\xfcller"
    assert decode_message(raw).codec == "latin-1"
    assert decode_message(raw).text.endswith("Müller")
    assert decode_message(raw, fallback="utf-8").lossy


def test_decode_unknown_msh18_uses_fallback() -> None:
    raw = (HEADER + "KLINGON\rPID|1").encode()
    assert decode_message(raw, fallback="cp1252").codec == "cp1252"


def test_decode_declared_utf16_on_ascii_bytes_falls_back() -> None:
    raw = (HEADER + "UNICODE UTF-16\rPID|1||X").encode()
    decoded = decode_message(raw)
    assert decoded.codec == "latin-1"
    assert decoded.text.startswith("MSH|")


def test_decode_binary_junk_never_raises() -> None:
    decoded = decode_message(fixture_bytes("binary_junk.bin"), fallback="utf-8")
    assert decoded.lossy
    assert decoded.codec == "utf-8"


@given(st.binary(max_size=300))
def test_decode_message_never_raises(raw: bytes) -> None:
    decoded = decode_message(raw, fallback="ascii")
    assert isinstance(decoded.text, str)


def test_encode_text_strict_names_the_first_bad_character() -> None:
    with pytest.raises(HL7EncodeError) as info:
        encode_text("Zoë costs 5€ and 6€", "iso8859-1")
    err = info.value
    assert (err.position, err.character, err.codec) == (11, "€", "iso8859-1")
    assert "U+20AC" in str(err)
    assert "position 11" in str(err)
    assert isinstance(err, ValueError)


def test_encode_text_hl7_escapes_utf8_bytes() -> None:
    out = encode_text("Zoë 5€ 日本", "iso8859-1", errors="hl7")
    assert out == b"Zo\xeb 5\\XE282AC\\ \\XE697A5\\\\XE69CAC\\"
    text = out.decode("iso8859-1")
    assert unescape(text, DEFAULT_DELIMITERS) == "Zoë 5€ 日本"


def test_encode_text_hl7_with_stateful_codec() -> None:
    out = encode_text("日本 €", "iso2022_jp", errors="hl7")
    assert out.decode("iso2022_jp") == "日本 \\XE282AC\\"


def test_encode_text_rejects_unknown_error_mode() -> None:
    with pytest.raises(ValueError, match="errors must be"):
        encode_text("x", "ascii", errors="replace")  # type: ignore[arg-type]


def test_encode_text_plain() -> None:
    assert encode_text("Müller", "iso8859-1") == b"M\xfcller"
    assert encode_text("Müller", "utf-8") == "Müller".encode()
