"""Log lines: JSON, one event each, PHI redacted unless explicitly allowed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from engine.logging import REDACTED, configure_logging, get_logger


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    s = io.StringIO()
    configure_logging("debug", "json", stream=s)
    yield s
    configure_logging("info", "json", stream=io.StringIO())


def test_unknown_keys_are_redacted(stream: io.StringIO) -> None:
    get_logger().info("message_processed", channel="ris", patient_name="DOE^JANE",
                      pid="PAT1", raw="MSH|...")
    line = json.loads(stream.getvalue())
    assert line["event"] == "message_processed"
    assert line["channel"] == "ris"
    assert line["patient_name"] == REDACTED and line["raw"] == REDACTED
    assert "DOE" not in stream.getvalue()


def test_phi_allowed_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    s = io.StringIO()
    configure_logging("info", "json", phi=True, stream=s)
    get_logger().info("debugging", patient_name="DOE^JANE")
    assert "DOE^JANE" in s.getvalue()
    configure_logging("info", "json", stream=io.StringIO())


def test_level_filters(stream: io.StringIO) -> None:
    configure_logging("warning", "json", stream=stream)
    get_logger().info("quiet_event")
    get_logger().warning("loud_event")
    assert "quiet_event" not in stream.getvalue() and "loud_event" in stream.getvalue()


def test_event_line_renders_like_structlog_and_redacts(stream: io.StringIO) -> None:
    from engine.logging import EventLine, _flush_pending

    keys = ("channel", "message_id", "control_id", "reason", "duration_ms", "patient_name")
    line = EventLine("radbridge.test", keys)
    values = ("ris", 7, 'C"1\\{x}', None, 1.25, "DOE^JANE")
    line.emit("message_processed", *values)
    get_logger("radbridge.test").info("message_processed", **dict(zip(keys, values,
                                                                      strict=True)))
    _flush_pending()
    fast, slow = (json.loads(x) for x in stream.getvalue().splitlines())
    slow.pop("logger", None)
    assert fast.pop("timestamp")[:10] == slow.pop("timestamp")[:10]
    assert fast == slow
    assert fast["patient_name"] == REDACTED and "DOE" not in stream.getvalue()
    assert list(fast)[:6] == list(keys)


def test_event_line_writes_phi_only_when_asked() -> None:
    from engine.logging import EventLine, _flush_pending

    s = io.StringIO()
    configure_logging("info", "json", phi=True, stream=s)
    try:
        EventLine("radbridge.test", ("channel", "patient_name")).emit("seen", "ris", "DOE")
        _flush_pending()
        assert json.loads(s.getvalue())["patient_name"] == "DOE"
    finally:
        configure_logging("info", "json", stream=io.StringIO())
