"""Running mappings: every step kind, values, policies and outcomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.errors import MessageRejected
from engine.hl7 import HL7Message
from transforms import Mapping

from .conftest import OMI, ORM, hl7

Load = Callable[..., Mapping]

HEAD = "mapping: m\ninput: hl7\noutput: record\n"


def run(mapping: Load, steps: str, message: str = ORM, head: str = HEAD, **params: Any
        ) -> Any:
    return mapping(head + steps, **params).run(message)


def test_from_takes_the_first_non_empty_source(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: AccessionNumber\n    from: [IPC-1.1, OBR-18]\n")
    assert r.record == {"AccessionNumber": "ACC0001"}
    r = run(mapping, "steps:\n  - set: AccessionNumber\n    from: [IPC-1.1, OBR-18]\n", OMI)
    assert r.record == {"AccessionNumber": "ACC0002"}


def test_whole_field_reads_a_structured_value(mapping: Load) -> None:
    message = ORM.replace("TESTPATIENT^ALICE^M", "O\\S\\BRIEN^ANN^\\T\\")
    r = run(mapping, "steps:\n  - set: N\n    from: PID-5\n  - set: G\n    from: PID-5.1\n",
            message)
    assert r.record == {"N": "O^BRIEN^ANN^&", "G": "O^BRIEN"}


def test_other_delimiters_read_the_same_values(mapping: Load) -> None:
    message = hl7("""
        MSH#*~\\@#RIS#GENHOSP#RADBRIDGE#GENHOSP#20261122##ORM*O01#X1#P#2.3.1
        PID#1##PAT1***GENHOSP@1.2.3@ISO##DOE*JOHN
        """)
    r = run(mapping, "steps:\n  - set: N\n    from: PID-5\n  - set: I\n    from: PID-3.4\n"
            "  - set: T\n    from: MSH-9\n", message)
    assert r.record == {"N": "DOE^JOHN", "I": "GENHOSP&1.2.3&ISO", "T": "ORM^O01"}


def test_value_concat_default_and_empty_results(mapping: Load) -> None:
    r = run(mapping, """steps:
  - set: A
    value: fixed
  - set: B
    concat: [PID-5.2, PID-5.1, PID-5.9]
    separator: " "
  - set: C
    concat: [ORC-1, ORC-5, ORC-99]
    separator: _
    skip_empty: false
  - set: D
    from: PID-99
    default: none
  - set: A
    from: PID-99
""")
    assert r.record == {"A": "fixed", "B": "ALICE TESTPATIENT", "C": "NW_SC_", "D": "none"}


def test_required_value_rejects_with_reason_code_and_location(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: X\n    from: [IPC-1.1, OBR-21]\n    required: true\n")
    assert (r.status, r.reason, r.error_code, r.location, r.ack_code) == \
        ("rejected", "required value X is missing", "101", "OBR^1^21", "AE")
    rejection = r.to_rejection()
    assert isinstance(rejection, MessageRejected)
    assert (rejection.code, rejection.error_code, rejection.location) == ("AE", "101", "OBR^1^21")


@pytest.mark.parametrize(("policy", "status", "value"), [("reject", "rejected", None),
                                                         ("truncate", "ok", "PAT1")])
def test_length_policy(mapping: Load, policy: str, status: str, value: str | None) -> None:
    r = run(mapping, f"length_policy: {policy}\nsteps:\n  - set: PatientID\n    from: PID-3.1\n"
            "    max_length: 4\n")
    assert r.status == status
    if value:
        assert r.record["PatientID"] == value
        assert r.warnings == ("PatientID truncated to 4 characters (was 8)",)
    else:
        assert (r.reason, r.error_code, r.location) == \
            ("PatientID is too long: 8 characters, at most 4 allowed", "104", "PID^1^3^1^1")


def test_on_overflow_overrides_the_mapping_policy(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: P\n    from: PID-3.1\n    max_length: 3\n"
            "    on_overflow: truncate\n")
    assert r.record == {"P": "PAT"}


def test_let_variables_and_output_references(mapping: Load) -> None:
    r = run(mapping, """steps:
  - let: acc
    from: OBR-18
    ops: [lower]
  - set: A
    from: $acc
  - set: B
    from: out.A
    ops: [upper]
  - set: C
    value: "yes"
    when: 'out.B == "ACC0001" and $acc matches "^acc"'
  - set: D
    value: +0100
""")
    assert r.record == {"A": "acc0001", "B": "ACC0001", "C": "yes", "D": "+0100"}


def test_filter_drops_with_reason_and_stops(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - filter: not wanted\n    when: 'MSH-9.1 == \"ORM\"'\n"
            "  - set: X\n    value: never\n")
    assert (r.status, r.reason, r.output, r.ack_code) == ("filtered", "not wanted", None, "")


def test_reject_with_code_and_location(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - reject: no accession\n    when: present(OBR-18)\n"
            "    error_code: 101\n    location: OBR-18\n")
    assert (r.status, r.reason, r.error_code, r.location) == \
        ("rejected", "no accession", "101", "OBR^1^18")


def test_routes_accumulate_in_order_once_each(mapping: Load) -> None:
    steps = """steps:
  - route: ehr
  - route: [archive, ehr]
    when: present(OBR-18)
  - route: [never]
    when: empty(OBR-18)
"""
    assert run(mapping, steps).routes == ("ehr", "archive")
    assert run(mapping, "steps:\n  - set: X\n    value: x\n").routes is None


def test_foreach_group_reads_its_own_segments(mapping: Load) -> None:
    message = hl7("""
        MSH|^~\\&|RIS|H|RB|H|20261122||ORM^O01|X2|P|2.5.1
        PID|1||P1
        ORC|NW|A
        OBR|1|A||||||||||||||||ACC-A
        ORC|NW|B
        OBR|2|B||||||||||||||||ACC-B
        IPC|ACC-IPC
        """)
    r = run(mapping, """steps:
  - foreach: {group: ORC, members: [OBR, IPC]}
    into: Steps
    steps:
      - set: Placer
        from: ORC-2
      - set: Accession
        from: [IPC-1, OBR-18]
      - set: Patient
        from: PID-3
""", message)
    assert r.record == {"Steps": [
        {"Placer": "A", "Accession": "ACC-A", "Patient": "P1"},   # not the other group's IPC
        {"Placer": "B", "Accession": "ACC-IPC", "Patient": "P1"}]}


def test_foreach_each_makes_one_item_per_member(mapping: Load) -> None:
    message = OMI.rstrip("\r") + "\rIPC|ACC0002|RP0002||SPS0003\r"
    r = run(mapping, """steps:
  - foreach: {group: ORC, members: [TQ1, OBR, IPC], each: IPC}
    into: SPS
    steps:
      - set: ID
        from: IPC-4
      - set: Start
        from: TQ1-7.1
""", message)
    assert r.record["SPS"] == [{"ID": "SPS0002", "Start": "20261122100000"},
                               {"ID": "SPS0003", "Start": "20261122100000"}]


def test_foreach_segment_lets_do_not_leak_and_iteration_restores(mapping: Load) -> None:
    message = ORM.rstrip("\r") + "\rNTE|1||first\rNTE|2||second\r"
    r = run(mapping, """steps:
  - let: n
    value: outer
  - foreach: {segment: NTE}
    into: Notes
    steps:
      - let: n
        from: NTE-3
      - set: Text
        from: $n
      - set: Count
        from: out.Outer
  - set: Outer
    from: $n
""", message)
    assert r.record == {"Notes": [{"Text": "first"}, {"Text": "second"}], "Outer": "outer"}


def test_record_input_items_and_copy(mapping: Load) -> None:
    record: dict[str, Any] = {
        "PatientName": "DOE^JOHN", "Seq": [{"Acc": "A1", "Code": [{"V": "X"}]}, {"Acc": "A2"}],
        "Other": {"Deep": ["1", "2"]}}
    r = mapping("""mapping: m
input: record
output: record
steps:
  - copy: Other
  - copy: Other.Deep
    to: _copy.deep
  - set: Name
    from: PatientName
    ops: [{component: 1}]
  - set: FirstCode
    from: Seq[0].Code[0].V
  - foreach: {items: Seq}
    into: Items
    steps:
      - set: Accession
        from: item.Acc
      - copy: item
""").run(record)
    assert r.record == {"Other": {"Deep": ["1", "2"]}, "_copy": {"deep": ["1", "2"]},
                        "Name": "DOE", "FirstCode": "X",
                        "Items": [{"Accession": "A1", "Acc": "A1", "Code": [{"V": "X"}]},
                                  {"Accession": "A2", "Acc": "A2"}]}
    r.record["Other"]["Deep"].append("3")
    assert record["Other"]["Deep"] == ["1", "2"]  # a deep copy


def test_copy_star_merges_the_whole_record(mapping: Load) -> None:
    r = mapping("mapping: m\ninput: record\noutput: record\nsteps:\n  - copy: '*'\n"
                "  - set: B\n    value: new\n").run({"A": "1", "B": "old"})
    assert r.record == {"A": "1", "B": "new"}


HL7_OUT = """mapping: m
input: hl7
output: hl7
template: |
  MSH|^~\\&|RADBRIDGE|GENHOSP|EHR|GENHOSP|||ORU^R01||P|2.5.1
  PID
"""


def test_hl7_output_escapes_values_and_fills_msh(mapping: Load) -> None:
    r = run(mapping, """steps:
  - set: PID-5.1
    value: "A|B^C&D~E\\\\F"
  - set: OBR-4.2
    from: OBR-4.2
  - set: MSH-10
    from: MSH-10
""", head=HL7_OUT)
    msg = r.message
    assert msg.get("PID-5.1") == "A|B^C&D~E\\F"
    assert msg.encode().split("\r")[1] == "PID|||||A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F"
    assert msg.get("MSH-10") == "MSG00001" and len(msg.get("MSH-7")) == 14
    assert msg.segment_names == ["MSH", "PID", "OBR"]


def test_hl7_output_gets_a_fresh_control_id_when_left_empty(mapping: Load) -> None:
    m = mapping(HL7_OUT + "steps:\n  - set: PID-3.1\n    from: PID-3.1\n")
    first, second = m.run(ORM).message.get("MSH-10"), m.run(ORM).message.get("MSH-10")
    assert first and second and first != second


def test_hl7_output_foreach_writes_each_item_with_hash(mapping: Load) -> None:
    message = ORM.rstrip("\r") + "\rORC|NW|PLC9\rOBR|2|PLC9||||||||||||||||ACC9\r"
    r = run(mapping, """steps:
  - foreach: {group: ORC, members: [OBR, ZDS]}
    steps:
      - set: ORC[#]-2
        from: ORC-2
      - set: OBR[#]-18
        from: OBR-18
""", message, head=HL7_OUT)
    assert r.message.segment_names == ["MSH", "PID", "ORC", "OBR", "ORC", "OBR"]
    assert [r.message.get("OBR[1]-18"), r.message.get("OBR[2]-18")] == ["ACC0001", "ACC9"]


def test_copy_segments_fill_placeholders_then_append(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - copy: PID\n  - copy: OBR\n  - copy: PV1-8\n    to: OBR-16\n",
            head=HL7_OUT)
    lines = r.message.encode().split("\r")
    assert lines[1] == ORM.split("\r")[1]                # PID filled in place, byte for byte
    assert lines[2].startswith("OBR|1|PLC0001|FIL0001|CTHEAD^CT HEAD WITHOUT CONTRAST^L")
    assert r.message.get("OBR-16") == "1234^REFERRER^ROBERT^^^DR"


def test_copy_translates_delimiters_between_messages(mapping: Load) -> None:
    message = hl7("""
        MSH#*~\\@#RIS#GENHOSP#RADBRIDGE#GENHOSP#20261122##ORM*O01#X1#P#2.3.1
        PID#1##PAT1***GENHOSP@1.2.3~PAT2##DOE*JO\\S\\HN
        """)
    r = run(mapping, "steps:\n  - copy: PID-3\n  - copy: PID-5\n", message, head=HL7_OUT)
    assert r.message.encode().split("\r")[1] == "PID|||PAT1^^^GENHOSP&1.2.3~PAT2||DOE^JO\\S\\HN"
    assert r.message.get("PID-5.2") == "JO^HN"


def test_list_values_become_repetitions(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: PID-3.1\n    value: [A, B]\n", head=HL7_OUT)
    assert r.message.get_all("PID-3.1") == ["A", "B"]


@pytest.mark.parametrize(("charset", "expected"), [
    ("8859/1", "M\xdcLLER".encode("latin-1")),
    ("UNICODE UTF-8", "MÜLLER".encode()),
    ("ascii", b"M\\XC39C\\LLER"),
    (None, b"M\\XC39C\\LLER"),                     # no MSH-18: ASCII with HL7 hex escapes
])
def test_encode_per_destination_charset(mapping: Load, charset: str | None,
                                        expected: bytes) -> None:
    r = run(mapping, "steps:\n  - set: PID-5.1\n    value: MÜLLER\n", head=HL7_OUT)
    assert expected in r.encode(charset)


def test_unparseable_input_is_rejected_ar(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: X\n    value: x\n", "PID|1||X\r")
    assert (r.status, r.ack_code, r.error_code) == ("rejected", "AR", "100")


def test_bytes_input_is_decoded_by_msh18(mapping: Load) -> None:
    raw = ORM.replace("TESTPATIENT^ALICE", "MÜLLER^JÖRG").encode("latin-1")
    r = mapping(HEAD + "steps:\n  - set: N\n    from: PID-5.1\n").run(raw)
    assert r.record == {"N": "MÜLLER"}


def test_wrong_input_kind_is_a_programming_error(mapping: Load) -> None:
    with pytest.raises(TypeError):
        mapping(HEAD + "steps:\n  - set: X\n    value: x\n").run({"not": "hl7"})
    with pytest.raises(TypeError):
        mapping("mapping: m\ninput: record\noutput: record\nsteps:\n  - copy: '*'\n").run(ORM)


def test_unexpected_step_failure_is_a_rejection_naming_the_step(mapping: Load) -> None:
    r = run(mapping, "steps:\n  - set: A\n    value: text\n  - set: A.B\n    value: x\n")
    assert (r.status, r.error_code) == ("rejected", "207")
    assert r.reason == "step 2 (set A.B): mapping failed (TypeError)"


def test_params_substitute_and_override(mapping: Load) -> None:
    text = HEAD + """params:
  site: {default: GENHOSP, choices: [GENHOSP, OTHER]}
  policy: reject
length_policy: $policy
steps:
  - set: Site
    value: $site
  - set: Fallback
    from: PID-99
    ops: [{default: $site}]
  - set: P
    from: PID-3.1
    max_length: 3
"""
    assert mapping(text).run(ORM).status == "rejected"
    r = mapping(text, site="OTHER", policy="truncate").run(ORM)
    assert r.record == {"Site": "OTHER", "Fallback": "OTHER", "P": "PAT"}


def test_input_message_is_not_modified(mapping: Load) -> None:
    msg = HL7Message.parse(ORM)
    mapping(HL7_OUT + "steps:\n  - copy: PID\n  - set: PID-3.1\n    value: NEW\n").run(msg)
    assert msg.encode() == ORM


def test_hl7_output_can_be_read_back_with_out(mapping: Load) -> None:
    r = run(mapping, """steps:
  - set: PID-3.1
    from: PID-3.1
  - set: PID-3.4
    value: CHECKED
    when: 'out.PID-3.1 == "PAT10001"'
""", head=HL7_OUT)
    assert r.message.get("PID-3") == "PAT10001^^^CHECKED"
