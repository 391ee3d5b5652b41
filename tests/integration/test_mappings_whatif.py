"""Mappings in a running channel, lookup misses, `radbridge test`, and the what-if replay."""

from __future__ import annotations

import hl7.client
import pytest

from tests.integration.conftest import EngineFactory
from tests.support.client import orm
from tests.support.peers import MLLPSink, wait_until

pytestmark = pytest.mark.integration

EHR_MAPPING = """\
mapping: ehr_out
description: order → status to the EHR (test mapping)
input: hl7
output: hl7
tables:
  mod: {{values: {{CT: COMPUTED TOMOGRAPHY}}}}
template: |
  MSH|^~\\&|RADBRIDGE|GENHOSP|EHR|GENHOSP|||ORM^O01||P|2.3.1
steps:
  - filter: "only orders go to the EHR"
    when: 'MSH-9.1 != "ORM"'
  - copy: PID
  - copy: ORC
  - copy: OBR
  - set: OBR-4.2
    from: OBR-4.2
    ops: [upper]
  - set: OBR-24
    from: OBR-4.1
    ops: [{{lookup: mod, default: OTHER}}]
{extra}
"""


def orm_for(i: int, code: str) -> bytes:
    return orm(i).replace(b"CTHEAD^CT HEAD^L", f"{code}^{code} study^L".encode())


def test_mapping_payloads_lookup_misses_and_whatif_report_exactly_the_changed_messages(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, start=False)
    base = eng.config.parent
    (base / "mappings").mkdir()
    (base / "mappings" / "ehr_out.yaml").write_text(EHR_MAPPING.format(extra=""))
    cfg = eng.config.read_text().replace(
        "        port: " + str(sink.port),
        "        port: " + str(sink.port) + "\n        mapping: mappings/ehr_out.yaml")
    eng.config.write_text(cfg)
    eng.start()
    codes = ["CT", "MR", "CT", "US", "CT"]
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        for i, code in enumerate(codes):
            assert b"MSA|AA" in client.send_message(orm_for(i, code))
        adt = (b"MSH|^~\\&|ADT|H|RB|H|2026||ADT^A08|ADT1|P|2.3.1\rPID|1||P1^^^H^MR||X^Y\r")
        assert b"MSA|AA" in client.send_message(adt)  # filtered by the mapping, still ACKed
    assert wait_until(lambda: len(sink.received) == 5)
    first = sink.received[0].decode()
    assert "|EHR|" in first and "CT STUDY" in first and "COMPUTED TOMOGRAPHY" in first
    assert "OTHER" in sink.received[1].decode()
    # misses are persisted and listed
    assert wait_until(lambda: "MR" in eng.cli("lookups", "misses").stdout, timeout=10)
    misses = eng.cli("lookups", "misses").stdout
    assert "US" in misses and "ehr_out" in misses

    # the what-if: a new rule changes OBR-24 for CT only
    new_dir = base / "candidate"
    (new_dir / "mappings").mkdir(parents=True)
    (new_dir / "mappings" / "ehr_out.yaml").write_text(EHR_MAPPING.format(extra=(
        "  - set: OBR-24\n    value: CT-NEW\n    when: 'OBR-4.1 == \"CT\"'\n")))
    new_cfg = new_dir / "channels.yaml"
    new_cfg.write_text(eng.config.read_text())
    out = eng.cli("replay", "--dry-run", "--config", str(new_cfg), "--since", "1h")
    assert out.returncode == 0, out.stderr
    report = out.stdout
    assert "3 of 6 messages would change (sink: 3)" in report, report
    for i in (0, 2, 4):
        assert f"control id MSG{i:06d}" in report
    for i in (1, 3):
        assert f"control id MSG{i:06d}" not in report
    assert 'sink: OBR-24: "COMPUTED TOMOGRAPHY" → "CT-NEW"' in report
    assert len(sink.received) == 5, "a dry run sends nothing"

    # radbridge test runs the mapping tests beside the mappings (none here: 0 passed)
    t = eng.cli("test")
    assert "0 passed, 0 failed" in t.stdout


def test_mapping_change_reloads_and_an_invalid_mapping_is_refused_under_load(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    import collections
    import json
    import threading
    import time

    eng = engine_factory(sink_port=sink.port, start=False)
    base = eng.config.parent
    (base / "mappings").mkdir()
    mapping = base / "mappings" / "ehr_out.yaml"
    mapping.write_text(EHR_MAPPING.format(extra=""))
    eng.config.write_text(eng.config.read_text().replace(
        "        port: " + str(sink.port),
        "        port: " + str(sink.port) + "\n        mapping: mappings/ehr_out.yaml"))
    eng.start()
    acked: list[str] = []
    stop = threading.Event()

    failures: list[str] = []

    def stream() -> None:
        with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
            i = 0
            while not stop.is_set() and i < 5000:
                ack = client.send_message(orm_for(i, "CT"))
                if b"MSA|AA" in ack:
                    acked.append(f"MSG{i:06d}")
                else:
                    failures.append(ack.decode(errors="replace"))
                i += 1
                time.sleep(0.003)

    t = threading.Thread(target=stream)
    t.start()
    try:
        assert wait_until(lambda: len(acked) > 50)
        mapping.write_text(EHR_MAPPING.format(extra="  - set: OBR-24\n    value: RELOADED\n"))
        assert wait_until(lambda: '"config_reloaded"' in eng.logs(), timeout=15)
        assert wait_until(lambda: any(b"RELOADED" in m for m in sink.received), timeout=10)
        mapping.write_text(EHR_MAPPING.format(extra="  - set: OBR-24\n    ops: [uper]\n"))
        assert wait_until(lambda: '"config_reload_rejected"' in eng.logs(), timeout=15)
        n = len(acked)
        assert wait_until(lambda: len(acked) > n + 50)
    finally:
        stop.set()
        t.join(timeout=30)
    assert not failures, failures[:2]
    rejected = next(json.loads(ln) for ln in eng.logs().splitlines()
                    if '"config_reload_rejected"' in ln)
    assert any("ehr_out.yaml:" in p and "uper" in p for p in rejected["problems"]), rejected
    # the running mapping (the valid reloaded one) still serves after the refusal
    def placers() -> list[str]:  # the outbound messages have fresh control ids: match ORC-2
        out = []
        for m in list(sink.received):
            orc = next(s for s in m.split(b"\r") if s.startswith(b"ORC"))
            out.append("MSG" + orc.split(b"|")[2].decode()[3:])
        return out

    assert wait_until(lambda: set(acked) <= set(placers()), timeout=30), (
        sorted(set(acked) - set(placers()))[:5], len(acked), len(sink.received))
    counts = collections.Counter(placers())
    assert max(counts.values()) == 1 and len(counts) == len(acked)
    assert b"RELOADED" in sink.received[-1]
