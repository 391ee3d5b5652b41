"""Reload under load: the listener keeps its connections, nothing is lost or ACKed twice,
an invalid file is refused with its lint output and the running configuration stays."""

from __future__ import annotations

import collections
import json
import signal
import threading
import time

import hl7.client
import pytest

from tests.integration.conftest import EngineFactory
from tests.support.client import orm
from tests.support.peers import MLLPSink, wait_until

pytestmark = pytest.mark.integration


def _stream(port: int, acked: list[str], errors: list[str], stop: threading.Event) -> None:
    i = 0
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        while not stop.is_set() and i < 20000:
            ack = client.send_message(orm(i))
            if b"MSA|AA|" in ack:
                acked.append(f"MSG{i:06d}")
            else:
                errors.append(ack.decode(errors="replace"))
            i += 1
            time.sleep(0.002)


def test_reload_under_load_swaps_pipeline_without_losing_or_duplicating(
    engine_factory: EngineFactory, sink: MLLPSink
) -> None:
    second = MLLPSink()
    try:
        eng = engine_factory(sink_port=sink.port)
        original = eng.config.read_text()
        acked: list[str] = []
        errors: list[str] = []
        stop = threading.Event()
        t = threading.Thread(target=_stream, args=(eng.mllp_port, acked, errors, stop))
        t.start()
        assert wait_until(lambda: len(acked) > 100)
        # 1. valid change: a second destination appears (applied by the file watcher)
        eng.config.write_text(original + (
            "      - name: second\n        type: mllp_sender\n        host: 127.0.0.1\n"
            f"        port: {second.port}\n"))
        assert wait_until(lambda: "config_reloaded" in eng.logs(), timeout=15)
        n_at_reload = len(acked)
        assert wait_until(lambda: len(acked) > n_at_reload + 100)
        # 2. invalid change: refused with the lint output, the running config stays
        tail = f"        host: 127.0.0.1\n        port: {second.port}"
        eng.config.write_text(eng.config.read_text().replace(
            "type: mllp_sender\n" + tail, "type: mllp_sendr\n" + tail))
        assert wait_until(lambda: "config_reload_rejected" in eng.logs(), timeout=15)
        rejected = next(json.loads(ln) for ln in eng.logs().splitlines()
                    if '"config_reload_rejected"' in ln)
        assert any("channels.yaml:" in p and "mllp_sendr" in p for p in rejected["problems"])
        n_after_invalid = len(acked)
        assert wait_until(lambda: len(acked) > n_after_invalid + 50)
        # 3. SIGHUP with the file restored to the original: the second destination goes away
        eng.config.write_text(original)
        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: eng.logs().count('"config_reloaded"') >= 2, timeout=15)
        time.sleep(0.3)
        stop.set()
        t.join(timeout=30)
        assert not errors, errors[:3]
        assert wait_until(lambda: set(acked) <= set(sink.control_ids()), timeout=30)
        counts = collections.Counter(sink.control_ids())
        assert max(counts.values()) == 1, "a message was delivered twice"
        assert len(counts) == len(acked), "only ACKed messages are delivered, each once"
        # the second destination got messages only while it was configured, each once
        c2 = collections.Counter(second.control_ids())
        assert c2 and max(c2.values()) == 1
        assert "connection_closed" not in eng.logs().split("config_reloaded", 1)[1].split(
            "config_reload_rejected", 1)[0], "the listener kept its connection across reload"
        # which configuration revision handled each message is recorded
        revisions = {json.loads(ln)["revision"] for ln in eng.logs().splitlines()
                     if '"config_reloaded"' in ln}
        shown = eng.cli("messages", "show", "1").stdout
        assert "revision=" in shown
        assert len(revisions) == 2
    finally:
        second.close()
