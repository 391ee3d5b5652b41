"""Logging: structlog configured once, JSON off a TTY, PHI redacted by default.

Every log line is an event (a past-tense fact in snake_case) plus keys. Only keys on the
allow-list below may carry values into a line; any other key has its value replaced by
``[redacted]`` unless ``RADBRIDGE_LOG_PHI=1`` (or ``engine.log.phi: true``) is set for a
debugging session. Identifiers that are not PHI (channel, MSH-10 control id, message id
in the store, peer address) are allowed; names, patient IDs, birth dates and raw payloads
are not, and code never puts them under an allowed key.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import MutableMapping, Sequence
from typing import Any, Literal

import structlog
import structlog.contextvars

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
        # reconciliation passes: counts and the trigger, never a patient value
        "trigger", "kind", "studies_read", "orders", "studies", "new", "seen_again",
        "reopened", "resolved", "flagged", "notifications",
    }
)
REDACTED = "[redacted]"

_configured = False
_phi_allowed = False
# What the hot-path line writer (``EventLine``) needs to know of the configuration.
_level = logging.INFO
_json = True
_out: Any = None
_generation = 0


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
    global _configured, _phi_allowed, _level, _json, _out, _generation
    _flush_pending()
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
        logger_factory=_OrderedPrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _level, _json, _out = numeric, use_json, out
    _generation += 1
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


# -- the hot path: one pre-compiled JSON line per event --------------------------------
_pending: list[str] = []
_pending_lock = threading.Lock()
_flush_scheduled = False


def _flush_pending() -> None:
    """Write the lines ``EventLine`` queued (one ``write`` for all of them)."""
    global _flush_scheduled
    with _pending_lock:
        _flush_scheduled = False
        if not _pending:
            return
        text = "\n".join(_pending) + "\n"
        _pending.clear()
        out = _out
    if out is None:
        return
    try:
        out.write(text)
        out.flush()
    except (OSError, ValueError):  # closed stream at exit: nothing left to do
        pass


atexit.register(_flush_pending)


class _OrderedPrintLogger(structlog.PrintLogger):
    """structlog's PrintLogger that first writes the hot-path lines queued before it,
    so that the file keeps the order in which events happened."""

    def msg(self, message: str) -> None:
        if _pending:
            _flush_pending()
        super().msg(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _OrderedPrintLoggerFactory:
    def __init__(self, file: Any) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _OrderedPrintLogger:
        return _OrderedPrintLogger(self._file)


_enc = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)
_ts_second = -1
_ts_prefix = ""


def _timestamp(now: float) -> str:
    """ISO 8601 UTC with microseconds, the date/time part cached per second."""
    global _ts_second, _ts_prefix
    sec = int(now)
    if sec != _ts_second:
        _ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_second = sec
    return f"{_ts_prefix}.{int((now - sec) * 1_000_000):06d}Z"


def _value(v: Any) -> str:
    if v.__class__ is str:
        return _enc(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v.__class__ is int or v.__class__ is float:
        return repr(v)
    return json.dumps(v, default=repr)


class EventLine:
    """A log line of fixed keys for a hot path (one per inbound message), rendered
    without structlog when the output is JSON: same keys, same JSON shape
    (``{...keys, "event", "level", "timestamp"}``), same allow-list redaction (a key
    not on ``SAFE_KEYS`` is written as ``[redacted]`` unless PHI logging is on).
    Lines are queued and written once per event-loop iteration (one ``write`` for many
    lines; structlog lines written in between flush the queue first, so the order is
    kept). Console output, bound context variables or no running loop: structlog.

    The line is rendered by a function generated once per key set (one f-string, no
    loop over the keys); a ``str`` value costs one C call to the JSON string encoder.
    """

    __slots__ = ("_fallback", "_gen", "_keys", "_levelno", "_render", "_render_phi",
                 "level", "name")

    def __init__(self, name: str, keys: Sequence[str], level: str = "info") -> None:
        self.name = name
        self.level = level
        self._levelno = logging.getLevelNamesMapping()[level.upper()]
        self._keys = tuple(keys)
        self._render = self._compile(redact=True)
        self._render_phi = self._compile(redact=False)
        self._fallback: Any = None
        self._gen = -1

    def _compile(self, *, redact: bool) -> Any:
        args = [f"v{i}" for i in range(len(self._keys))]
        parts = []
        for i, key in enumerate(self._keys):
            head = ("{{" if i == 0 else ", ") + _enc(key).replace("{", "{{").replace("}", "}}")
            if redact and key not in SAFE_KEYS:
                parts.append(f'{head}: "{REDACTED}"')
            else:
                v = args[i]
                parts.append(f"{head}: {{_enc({v}) if {v}.__class__ is str else "
                             f"_repr({v}) if {v}.__class__ in _NUMBERS else _value({v})}}")
        tail = (', "event": {_enc(event)}, "level": "' + self.level
                + '", "timestamp": "{_timestamp(_now())}"}}')
        src = (f"def render(event, {', '.join(args)}):\n"
               f"    return f'{''.join(parts)}{tail}'\n")
        scope: dict[str, Any] = {"_enc": _enc, "_value": _value, "_timestamp": _timestamp,
                                 "_now": time.time, "_repr": repr,
                                 "_NUMBERS": frozenset({int, float})}
        exec(compile(src, f"<EventLine {self.name}>", "exec"), scope)
        return scope["render"]

    def emit(self, event: str, *values: Any) -> None:
        """Write one line; ``values`` in the order of the keys given at construction."""
        if self._levelno < _level:
            return
        if not _json or structlog.contextvars._CONTEXT_VARS:
            if _generation != self._gen:
                self._fallback = get_logger(self.name)
                self._gen = _generation
            kw = dict(zip(self._keys, values, strict=True))
            getattr(self._fallback, self.level)(event, **kw)
            return
        if len(values) != len(self._keys):
            raise TypeError(f"{len(self._keys)} values expected, got {len(values)}")
        line = (self._render_phi if _phi_allowed else self._render)(event, *values)
        global _flush_scheduled
        with _pending_lock:
            _pending.append(line)
            if _flush_scheduled:
                return
            _flush_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(_flush_pending)
        except RuntimeError:  # no loop: write now
            _flush_pending()
