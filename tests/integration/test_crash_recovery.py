"""kill -9 mid-stream: every message that was ACKed is delivered after restart."""

from __future__ import annotations

import threading

import hl7.client
import pytest

from tests.integration.conftest import EngineFactory
from tests.support.client import orm
from tests.support.peers import MLLPSink, free_port, wait_until

pytestmark = pytest.mark.integration


def _stream(port: int, n: int, acked: list[str], stop: threading.Event) -> None:
    try:
        with hl7.client.MLLPClient("127.0.0.1", port) as client:
            for i in range(n):
                if stop.is_set():
                    return
                ack = client.send_message(orm(i))
                if b"MSA|AA|" in ack:
                    acked.append(f"MSG{i:06d}")
    except OSError:
        return  # the engine was killed under us


@pytest.mark.parametrize("sink_up_during_stream", [True, False])
def test_kill9_mid_stream_loses_no_acked_message(
    engine_factory: EngineFactory, sink_up_during_stream: bool
) -> None:
    port = free_port()
    sink = MLLPSink(port=port) if sink_up_during_stream else None
    eng = engine_factory(sink_port=port)
    acked: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=_stream, args=(eng.mllp_port, 5000, acked, stop))
    t.start()
    assert wait_until(lambda: len(acked) >= 300, timeout=30)
    eng.kill9()
    stop.set()
    t.join(timeout=10)
    n_acked = len(acked)
    assert 300 <= n_acked < 5000
    eng.start()
    if sink is None:
        sink = MLLPSink(port=port)
    try:
        assert wait_until(lambda: set(acked) <= set(sink.control_ids()), timeout=60), (
            f"missing after restart: {sorted(set(acked) - set(sink.control_ids()))[:10]}"
        )
        # per-destination order holds for the first delivery of each message
        first_seen: list[str] = []
        for cid in sink.control_ids():
            if cid not in first_seen:
                first_seen.append(cid)
        assert first_seen == sorted(first_seen)
    finally:
        sink.close()
