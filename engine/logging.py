"""Logging: structlog configured once, JSON off a TTY, PHI redacted by default.

Every log line is an event (a past-tense fact in snake_case) plus keys. Only keys on the
allow-list below may carry values into a line; any other key has its value replaced by
``[redacted]`` unless ``RADBRIDGE_LOG_PHI=1`` (or ``engine.log.phi: true``) is set for a
debugging session. Identifiers that are not PHI (channel, MSH-10 control id, message id
in the store, peer address) are allowed; names, patient IDs, birth dates and raw payloads
are not, and code never puts them under an allowed key.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

SAFE_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "exc_info", "exception",
        "channel", "destination", "message_id", "delivery_id", "control_id",
        "message_type", "version", "charset", "peer", "listener", "port", "host",
        "status", "code", "ack_code", "ack_mode", "attempts", "next_attempt_s",
        "reason", "error", "error_code", "duration_ms", "count", "bytes", "limit",
        "connections", "queue_depth", "revision", "path", "line", "col", "mode",
        "file", "problems", "since", "signal", "delay_s", "pid", "data_dir",
        "store", "frames", "junk_bytes", "type", "tls", "timeout_s", "ready",
        "errors", "warnings", "changed", "total", "url", "topic", "step",
    }
)
REDACTED = "[redacted]"

_configured = False
_phi_allowed = False


def redact_phi(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace the value of every key not on the allow-list."""
    if _phi_allowed:
        return event_dict
    for key in event_dict:
        if key not in SAFE_KEYS:
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    phi: bool = False,
    stream: Any = None,
) -> None:
    """Configure structlog and the stdlib root logger; safe to call again (reconfigures)."""
    global _configured, _phi_allowed
    _phi_allowed = phi or os.environ.get("RADBRIDGE_LOG_PHI", "") == "1"
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_phi,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the stdlib: keep them quiet and PHI-free.
    logging.basicConfig(level=logging.WARNING, stream=out, force=True)
    for noisy in ("pynetdicom", "pydicom", "aiomqtt", "hl7apy"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    _configured = True


def get_logger(name: str = "radbridge") -> Any:
    """A bound structlog logger; configures defaults on first use."""
    if not _configured:
        configure_logging()
    return structlog.get_logger(name)
