"""The engine over loopback: python-hl7's MLLP client in, an MLLP sink out."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import hl7.client
import pytest

from tests.integration.conftest import EngineFactory
from tests.support.client import RawClient, msa, orm, segment
from tests.support.peers import MLLPSink, ack_for, control_id, wait_until

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def test_order_sent_with_python_hl7_mllp_send_is_acked_and_delivered(
    engine_factory: EngineFactory, sink: MLLPSink, tmp_path: Path
) -> None:
    eng = engine_factory(sink_port=sink.port)
    src = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "orm_o01_nw_v231.hl7"
    out = subprocess.run(
        [str(BIN / "mllp_send"), "--loose", "-f", str(src), "-p", str(eng.mllp_port),
         "127.0.0.1"],
        capture_output=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert b"MSA|AA|MSG00001" in out.stdout
    assert wait_until(lambda: sink.control_ids() == ["MSG00001"])
    # the delivered payload is the message as received (CR-separated)
    assert sink.received[0].startswith(b"MSH|^~\\&|RIS|GENHOSP")


def test_many_orders_on_one_connection_are_acked_in_order_and_delivered_in_order(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port)
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        for i in range(200):
            ack = client.send_message(orm(i))
            assert f"MSA|AA|MSG{i:06d}".encode() in ack
    expected = [f"MSG{i:06d}" for i in range(200)]
    assert wait_until(lambda: len(sink.received) >= 200, timeout=20)
    assert sink.control_ids() == expected


def test_pipelined_frames_in_one_write_each_get_their_ack(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port)
    c = RawClient(eng.mllp_port)
    blob = b"".join(b"\x0b" + orm(i) + b"\x1c\x0d" + (b"\n" if i % 2 else b"") for i in range(10))
    # split mid-frame to exercise reassembly too
    c.send(blob[:777])
    c.send(blob[777:])
    codes = [msa(c.read_frame())[1:3] for _ in range(10)]
    assert codes == [["AA", f"MSG{i:06d}"] for i in range(10)]
    c.close()


def test_mixed_frames_pipelined_on_one_connection_are_answered_in_order(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    """Frames the fast lane takes (plain orders) and frames it leaves to the worker task
    (a Latin-1 message, an unsupported version, a type seen for the first time) sent
    back to back without waiting: every ACK comes back in the order of the frames."""
    eng = engine_factory(sink_port=sink.port)
    latin = "MSH|^~\\&|RIS|H|RB|H|2026||ORM^O01|LAT{n}|P|2.3.1||||||8859/1\r" \
        "PID|1||P1^^^H||MÜLLER^ÉVA\r"
    frames: list[tuple[bytes, list[str]]] = []
    for i in range(60):
        if i % 10 == 3:
            frames.append((latin.format(n=i).encode("latin-1"), ["AA", f"LAT{i}"]))
        elif i % 10 == 6:
            frames.append((orm(i).replace(b"2.3.1", b"9.9"), ["AR", f"MSG{i:06d}"]))
        elif i == 8:
            frames.append((orm(i).replace(b"ORM^O01", b"ADT^A08"), ["AA", f"MSG{i:06d}"]))
        else:
            frames.append((orm(i), ["AA", f"MSG{i:06d}"]))
    c = RawClient(eng.mllp_port)
    for start in range(0, 60, 20):  # 20 frames per write, then 20 single writes
        chunk = frames[start:start + 20]
        if start == 20:
            for payload, _ in chunk:
                c.send_frame(payload)
        else:
            c.send(b"".join(b"\x0b" + p + b"\x1c\r" for p, _ in chunk))
    got = [msa(c.read_frame())[1:3] for _ in range(60)]
    assert got == [want for _, want in frames]
    c.close()


@pytest.mark.parametrize(
    ("name", "code", "reason_part"),
    [
        ("no_msh.hl7", "AR", "does not start with MSH"),
        ("bad_encoding_chars.hl7", "AR", "MSH-2"),
        ("truncated_msh.hl7", "AR", "MSH-9"),
        ("unknown_version.hl7", "AR", "unsupported HL7 version '9.9'"),
    ],
)
def test_malformed_message_is_answered_with_reason_and_recorded(
    engine_factory: EngineFactory, sink: MLLPSink, sample_bytes: Callable[[str], bytes],
    name: str, code: str, reason_part: str,
) -> None:
    eng = engine_factory(sink_port=sink.port)
    c = RawClient(eng.mllp_port)
    c.send_frame(sample_bytes(name))
    ack = c.read_frame()
    fields = msa(ack)
    assert fields[1] == code
    text = ack.decode("latin-1")
    assert reason_part in text
    assert segment(ack, "ERR"), "an ERR segment carries the reason"
    # the same connection keeps serving
    c.send_frame(orm(1))
    assert msa(c.read_frame())[1:3] == ["AA", "MSG000001"]
    c.close()
    listing = eng.cli("messages", "--status", "rejected", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert len(rows) == 1
    assert reason_part.split("'", maxsplit=1)[0].strip() in rows[0]["error"]
    assert not sink.received or sink.control_ids() == ["MSG000001"]


def test_binary_junk_is_skipped_and_the_next_frame_is_processed(
    engine_factory: EngineFactory, sink: MLLPSink, sample_bytes: Callable[[str], bytes]
) -> None:
    eng = engine_factory(sink_port=sink.port)
    c = RawClient(eng.mllp_port)
    junk = bytes(b for b in sample_bytes("binary_junk.bin") if b not in (0x0B, 0x1C))
    c.send(junk + b"\x0b" + orm(7) + b"\x1c\x0d")
    assert msa(c.read_frame())[1:3] == ["AA", "MSG000007"]
    c.close()
    metrics = eng.http_get("/metrics")
    assert 'radbridge_mllp_junk_bytes_total{channel="ris"}' in metrics
    assert "mllp_junk_skipped" in eng.logs()


def test_binary_junk_inside_a_frame_is_rejected_not_crashing(
    engine_factory: EngineFactory, sink: MLLPSink, sample_bytes: Callable[[str], bytes]
) -> None:
    eng = engine_factory(sink_port=sink.port)
    c = RawClient(eng.mllp_port)
    c.send_frame(bytes(b for b in sample_bytes("binary_junk.bin") if b not in (0x0B, 0x1C)))
    ack = c.read_frame()
    assert msa(ack)[1] == "AR"
    c.send_frame(orm(2))
    assert msa(c.read_frame())[1] == "AA"
    c.close()


def test_oversized_frame_is_rejected_and_connection_closed_but_listener_serves(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, max_frame=4096)
    c = RawClient(eng.mllp_port)
    c.send(b"\x0b" + orm(1) + b"OBX|" + b"X" * 10000 + b"\x1c\x0d")
    ack = c.read_frame()
    assert msa(ack)[1] == "AR"
    assert b"maximum of 4096 bytes" in ack
    assert c.closed_by_peer()
    c.close()
    c2 = RawClient(eng.mllp_port)
    c2.send_frame(orm(3))
    assert msa(c2.read_frame())[1:3] == ["AA", "MSG000003"]
    c2.close()


def test_client_stalling_mid_frame_is_cut_off_while_others_are_served(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, frame_timeout=1)
    staller = RawClient(eng.mllp_port)
    staller.send(b"\x0b" + orm(1)[:40])  # start a frame and stall
    other = RawClient(eng.mllp_port)
    other.send_frame(orm(2))
    assert msa(other.read_frame())[1:3] == ["AA", "MSG000002"]
    assert staller.closed_by_peer(timeout=5)
    assert "frame_timed_out" in eng.logs()
    other.close()
    staller.close()


def test_enhanced_mode_answers_commit_ack_honouring_msh15(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port)
    c = RawClient(eng.mllp_port)
    m = orm(5).replace(b"|P|2.3.1\r", b"|P|2.3.1|||AL|NE\r")
    c.send_frame(m)
    assert msa(c.read_frame())[1:3] == ["CA", "MSG000005"]
    # ER: an accept ACK only on error: a good message gets no answer, a bad one CR
    good = orm(6).replace(b"|P|2.3.1\r", b"|P|2.3.1|||ER|NE\r")
    bad = orm(7).replace(b"|P|2.3.1\r", b"|P|9.9|||ER|NE\r")
    c.send_frame(good)
    c.send_frame(bad)
    reply = c.read_frame()
    assert msa(reply)[1:3] == ["CR", "MSG000007"]
    c.close()


def test_latin1_message_is_decoded_by_msh18_and_stored_raw(
    engine_factory: EngineFactory, sink: MLLPSink, sample_bytes: Callable[[str], bytes]
) -> None:
    eng = engine_factory(sink_port=sink.port)
    raw = sample_bytes("orm_o01_nw_latin1.hl7").replace(
        b"MM-\\LLER^JM-VRG", "MÜLLER^JÖRG".encode("latin-1")
    )
    c = RawClient(eng.mllp_port)
    c.send_frame(raw)
    assert msa(c.read_frame())[1] == "AA"
    c.close()
    assert wait_until(lambda: len(sink.received) == 1)
    assert sink.received[0] == raw  # byte-exact pass-through
    shown = eng.cli("messages", "show", "1")
    assert "charset=iso8859-1" in shown.stdout.replace("iso8859_1", "iso8859-1").replace(
        "latin-1", "iso8859-1")


def test_sink_down_then_up_delivers_everything_in_order(
    engine_factory: EngineFactory
) -> None:
    from tests.support.peers import free_port

    port = free_port()
    eng = engine_factory(sink_port=port)
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        for i in range(20):
            assert b"MSA|AA" in client.send_message(orm(i))
    assert "delivery_retry_scheduled" in eng.logs() or wait_until(
        lambda: "delivery_retry_scheduled" in eng.logs())
    late = MLLPSink(port=port)
    try:
        assert wait_until(lambda: len(late.received) >= 20, timeout=20)
        assert late.control_ids() == [f"MSG{i:06d}" for i in range(20)]
    finally:
        late.close()


def test_send_interval_paces_the_sender_to_a_real_sink(engine_factory: EngineFactory) -> None:
    arrivals: list[float] = []

    def timed_ack(message: bytes) -> bytes | None:
        arrivals.append(time.monotonic())
        return ack_for(message)

    sink = MLLPSink(behaviour=timed_ack)
    try:
        eng = engine_factory(sink_port=sink.port, dest_extra="        send_interval_s: 0.2")
        with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
            for i in range(4):  # ACKed at once: the pacing is on the way out only
                assert b"MSA|AA" in client.send_message(orm(i))
        assert wait_until(lambda: len(sink.received) >= 4, timeout=10)
        assert sink.control_ids() == [f"MSG{i:06d}" for i in range(4)]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert min(gaps) >= 0.19, gaps
    finally:
        sink.close()


def test_several_connections_to_a_real_sink_keep_each_patient_in_order(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, dest_extra=(
        "        connections: 3\n        ordering: key\n        order_key: PID-3.1"))
    patients = [f"PAT{p:05d}" for p in range(6)]
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        for i in range(60):
            assert b"MSA|AA" in client.send_message(orm(i, patient=patients[i % 6]))
    assert wait_until(lambda: len(sink.received) >= 60, timeout=20)
    assert len(sink._conns) == 3  # the sender opened its three connections
    for p, patient in enumerate(patients):  # each patient's orders in the order sent
        mine = [m for m in sink.received if f"|{patient}^".encode() in m]
        assert [control_id(m) for m in mine] == [f"MSG{i:06d}" for i in range(p, 60, 6)]


def test_ack_timeout_closes_the_socket_and_a_late_ack_never_matches_the_next_message(
    engine_factory: EngineFactory
) -> None:
    calls = {"n": 0}

    def first_silent(message: bytes) -> bytes | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else ack_for(message)

    s = MLLPSink(behaviour=first_silent)
    try:
        eng = engine_factory(sink_port=s.port, ack_timeout=1)
        with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
            client.send_message(orm(1))
            client.send_message(orm(2))
        assert wait_until(lambda: s.control_ids()[-2:] == ["MSG000001", "MSG000002"], timeout=15)
        assert s.control_ids()[0] == "MSG000001"  # first try unanswered, then retried in order
        assert "connection_dropped" in eng.logs()
    finally:
        s.close()


def test_rejecting_peer_dead_letters_and_the_queue_moves_on(
    engine_factory: EngineFactory
) -> None:
    s = MLLPSink(behaviour=lambda m: ack_for(m, "AR" if b"MSG000001" in m else "AA"))
    try:
        eng = engine_factory(sink_port=s.port)
        with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
            client.send_message(orm(1))
            client.send_message(orm(2))
        assert wait_until(lambda: "MSG000002" in s.control_ids())
        dead = eng.cli("messages", "--delivery-status", "dead", "--json")
        rows = json.loads(dead.stdout)
        assert [r["control_id"] for r in rows] == ["MSG000001"]
        shown = eng.cli("messages", "show", str(rows[0]["id"]))
        assert "dead" in shown.stdout and "peer answered AR" in shown.stdout
    finally:
        s.close()


def test_retry_gives_up_after_max_attempts(engine_factory: EngineFactory) -> None:
    s = MLLPSink(behaviour=lambda m: ack_for(m, "AE"))
    try:
        eng = engine_factory(sink_port=s.port, max_attempts=3)
        with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
            client.send_message(orm(1))
        assert wait_until(lambda: "delivery_dead_lettered" in eng.logs(), timeout=15)
        assert len(s.received) == 3
    finally:
        s.close()


def test_replay_requeues_a_message_to_a_destination(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port)
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        client.send_message(orm(1))
    assert wait_until(lambda: len(sink.received) == 1)
    out = eng.cli("replay", "1", "--to", "ris/sink")
    assert out.returncode == 0, out.stderr
    assert "re-queued 1 of 1" in out.stdout
    assert wait_until(lambda: len(sink.received) == 2, timeout=15)
    bad = eng.cli("replay", "1", "--to", "ris/nowhere")
    assert bad.returncode == 2 and "unknown destination" in bad.stderr


def test_max_connections_refuses_extra_connections(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, max_conn=2)
    a, b = RawClient(eng.mllp_port), RawClient(eng.mllp_port)
    a.send_frame(orm(1))
    b.send_frame(orm(2))
    assert msa(a.read_frame())[1] == "AA" and msa(b.read_frame())[1] == "AA"
    # a third connection from the same host replaces the stalest idle one
    c = RawClient(eng.mllp_port)
    c.send_frame(orm(3))
    assert msa(c.read_frame())[1] == "AA"
    assert "connection_replaced" in eng.logs()
    for x in (a, b, c):
        x.close()


def test_health_and_metrics_endpoints(engine_factory: EngineFactory, sink: MLLPSink) -> None:
    eng = engine_factory(sink_port=sink.port)
    health = json.loads(eng.http_get("/health"))
    assert health["status"] == "ready"
    assert health["listeners"]["ris"]["port"] == eng.mllp_port
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        client.send_message(orm(1))
        client.send_message(b"MSH|^~\\&|X|Y|Z|W|2026||ORM^O01|BAD|P|9.9\r")
    assert wait_until(lambda: len(sink.received) == 1)
    metrics = eng.http_get("/metrics")
    for needle in (
        'radbridge_messages_received_total{channel="ris"} 2.0',
        'radbridge_messages_acked_total{channel="ris"} 1.0',
        'radbridge_messages_nacked_total{channel="ris",code="AR"} 1.0',
        'radbridge_ack_latency_seconds_bucket{channel="ris",le="0.01"}',
        'radbridge_queue_depth{destination="ris/sink"}',
    ):
        assert needle in metrics, needle
    assert wait_until(
        lambda: 'radbridge_deliveries_sent_total{destination="ris/sink"} 1.0'
        in eng.http_get("/metrics"))
    store = json.loads(eng.http_get("/health"))["store"]
    assert store["items"] >= 2 and store["commits"] >= 1  # both messages, delivery outcome
    assert store["commit_mode"] == "inline" and store["checkpoint_errors"] == 0
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        for i in range(2, 40):  # (a pass that also queues the writer's indexing job
            client.send_message(orm(i))  # commits in the writer thread)
            store = json.loads(eng.http_get("/health"))["store"]
            if store["inline_commits"]:
                break
    assert store["inline_commits"] >= 1
    with pytest.raises(urllib.error.HTTPError) as err:  # console pages are off by default
        eng.http_get("/mismatches")
    err.value.close()
    assert err.value.code == 404


def test_no_phi_reaches_the_logs(engine_factory: EngineFactory, sink: MLLPSink) -> None:
    eng = engine_factory(sink_port=sink.port)
    names = ["ZZPHINAME^QQGIVEN", "YYOTHER^WWGIVEN"]
    with hl7.client.MLLPClient("127.0.0.1", eng.mllp_port) as client:
        client.send_message(orm(1, patient="PHIPAT777", name=names[0]))
        client.send_message(orm(2, patient="PHIPAT888", name=names[1]).replace(b"|2.3.1", b"|9.9"))
        bad = b"PID|1||PHIPAT999^^^X||ZZNOMSH^NAME\r"
        client.send_message(bad)
    assert wait_until(lambda: len(sink.received) == 1)
    eng.stop()
    logs = eng.logs()
    assert "message_processed" in logs and "message_rejected" in logs
    for secret in ("ZZPHINAME", "QQGIVEN", "YYOTHER", "PHIPAT777", "PHIPAT888", "PHIPAT999",
                   "ZZNOMSH", "19800214"):
        assert secret not in logs, secret


def test_engine_refuses_to_start_when_port_is_taken(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        eng = engine_factory(sink_port=sink.port, start=False)
        cfg = eng.config.read_text().replace(
            f"port: {eng.mllp_port}", f"port: {blocker.getsockname()[1]}")
        eng.config.write_text(cfg)
        eng.start(wait_ready=False)
        assert eng.proc is not None
        assert eng.proc.wait(timeout=20) == 1
        assert "cannot listen" in eng.logs()
    finally:
        blocker.close()


def test_idle_connection_is_closed_after_idle_timeout_but_a_busy_one_is_not(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    eng = engine_factory(sink_port=sink.port, extra_source="      idle_timeout_s: 1\n")
    idle = RawClient(eng.mllp_port)
    busy = RawClient(eng.mllp_port)
    for i in range(6):  # keeps talking for ~1.5 s, longer than the idle timeout
        busy.send_frame(orm(i))
        assert msa(busy.read_frame())[1] == "AA"
        if i < 5:
            time.sleep(0.3)
    assert idle.closed_by_peer(timeout=3)
    busy.send_frame(orm(9))
    assert msa(busy.read_frame())[1] == "AA"
    assert "connection_idle_closed" in eng.logs()
    idle.close()
    busy.close()
