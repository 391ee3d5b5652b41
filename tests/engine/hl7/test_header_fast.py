"""``HL7Message.key_fields``: the five MSH values of the hot path read in one pass must
equal the general accessors for every header shape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.hl7 import HL7Message, HL7ParseError

HEADERS = [
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM^O01|C1|P|2.3.1",
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM^O01^ORM_O01|C1|P|2.5.1|||AL|NE||8859/1",
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM^O01|C\\F\\1|P|2.5",  # escape in MSH-10
    "MSH|^~\\&|RIS|H|RB|H|2026||ADT^A08~ADT^A01|C1|P|2.4",  # repetition in MSH-9
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM|C1|P|2.5^ROMAN",  # no trigger, component in MSH-12
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM^|C^1|P|2.5||||ER",  # empty trigger, MSH-15 absent
    "MSH#^~\\&#RIS#H#RB#H#2026##ORU^R01#C1#P#2.6####SU#AL",  # other field separator
    "MSH|^~\\&|RIS|H|RB|H|2026||ORM&X^O01|C&1|P|2.5",  # subcomponents
]


def _general(m: HL7Message) -> tuple[str, str, str, str, str]:
    return m.message_type, m.control_id, m.version, m.accept_ack_type, m.app_ack_type


@pytest.mark.parametrize("header", HEADERS)
def test_key_fields_equal_the_properties(header: str) -> None:
    m = HL7Message.parse(f"{header}\rPID{header[3]}1\r")
    assert m.key_fields() == _general(m)


_value = st.text(alphabet="AB12.^~\\&", max_size=8)


@given(st.lists(_value, min_size=8, max_size=8), st.integers(min_value=13, max_value=19))
def test_key_fields_equal_the_properties_for_any_values(vals: list[str], n: int) -> None:
    fields = ["MSH", "^~\\&", "A", "B", "C", "D", "2026", "", "ORM^O01", "C1", "P", "2.5"]
    fields += [""] * 8
    fields[8:16] = [vals[0] or "X", vals[1] or "Y", vals[2], vals[3] or "2.5", *vals[4:8]]
    try:
        m = HL7Message.parse("|".join(fields[:n]))
    except HL7ParseError:  # a header the parser rejects has no key fields to compare
        return
    assert m.key_fields() == _general(m)
