"""Fixtures that start the engine as a subprocess with its own config on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.peers import EngineProcess, MLLPSink, engine_env, free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


def sample(name: str) -> bytes:
    """A fixture message with CR segment terminators."""
    data = (FIXTURES / name).read_bytes()
    if name.endswith(".bin"):
        return data
    return b"\r".join(line for line in data.replace(b"\r\n", b"\n").split(b"\n") if line) + b"\r"


CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http_port}}}
  log: {{level: info, format: json}}
channels:
  ris:
    source:
      type: mllp_listener
      host: 127.0.0.1
      port: {mllp_port}
      frame_timeout_s: {frame_timeout}
      max_frame_bytes: {max_frame}
      max_connections: {max_conn}
{extra_source}
    destinations:
      - name: sink
        type: mllp_sender
        host: 127.0.0.1
        port: {sink_port}
        ack_timeout_s: {ack_timeout}
        retry: {{max_attempts: {max_attempts}, initial_delay_s: 0.2, max_delay_s: 1, jitter: 0}}
{dest_extra}
"""


class EngineFactory:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.engines: list[EngineProcess] = []

    def __call__(
        self, *, sink_port: int, frame_timeout: float = 30, max_frame: int = 1048576,
        max_conn: int = 64, ack_timeout: float = 5, max_attempts: int = 50,
        extra_source: str = "", start: bool = True, dest_extra: str = "",
    ) -> EngineProcess:
        http_port, mllp_port = free_port(), free_port()
        cfg = self.tmp / "channels.yaml"
        cfg.write_text(CONFIG.format(
            http_port=http_port, mllp_port=mllp_port, sink_port=sink_port,
            frame_timeout=frame_timeout, max_frame=max_frame, max_conn=max_conn,
            ack_timeout=ack_timeout, max_attempts=max_attempts, extra_source=extra_source,
            dest_extra=dest_extra,
        ))
        eng = EngineProcess(cfg, engine_env(self.tmp), http_port, self.tmp / "engine.log")
        eng.mllp_port = mllp_port
        self.engines.append(eng)
        return eng.start() if start else eng


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[EngineFactory]:
    factory = EngineFactory(tmp_path)
    yield factory
    for eng in factory.engines:
        eng.stop()


@pytest.fixture
def sink() -> Iterator[MLLPSink]:
    s = MLLPSink()
    yield s
    s.close()


@pytest.fixture
def sample_bytes() -> Callable[[str], bytes]:
    return sample
