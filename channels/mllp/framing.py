"""Sans-I/O MLLP framing: bytes in, events out.

An MLLP block is ``<VT=0x0B> payload <FS=0x1C><CR=0x0D>``.  :class:`MLLPDecoder` never
touches a socket: the listener (or the sender reading ACKs) calls :meth:`MLLPDecoder.feed`
with whatever ``recv`` returned and acts on the events it gets back.  Any number of frames
per call, frames split anywhere (including between FS and CR) and trailing CR/LF after a
frame are all handled.  The buffer is only appended to and scanned once: the search for
the terminator resumes where it stopped, so a big frame arriving in small chunks costs
linear time.

Decisions (the HL7 MLLP spec says payloads contain neither VT nor FS):

* **FS not followed by CR** with ``require_end_cr=True``: the FS is kept as payload and the
  frame ends only at FS CR.  The boundary stays unambiguous, nothing is thrown away, and
  the HL7 layer (which will not accept a stray FS) answers with a NAK instead of the
  sender seeing a silent timeout.  With ``require_end_cr=False`` (Camel's
  ``requireEndOfData=false``) a lone FS ends the frame and the next byte is inter-frame data.
* **VT inside a frame**: the sender restarted.  The partial payload is dropped, reported
  as :class:`FrameAbandoned`, and the new frame starts at the new VT.
* **Junk** (non-whitespace bytes between frames) is counted, not buffered.  A run is
  everything from its first non-whitespace byte to the next VT; it is reported as one
  :class:`JunkSkipped` when that VT arrives or at :meth:`MLLPDecoder.eof`, so the events
  do not depend on how the stream was chunked.  CR/LF/space/tab between frames are silent.
* **Size limit**: a frame whose payload exceeds ``max_frame_bytes`` (complete, abandoned or
  still arriving) gives one :class:`FrameTooLarge` as soon as it is seen, so at most the
  limit plus one chunk is held.  The decoder is then failed: the caller answers AR and
  closes, and further :meth:`~MLLPDecoder.feed` raises :class:`FramingError`.
* **EOF** mid-frame gives :class:`TruncatedFrame`; a truncated payload is never a Frame.
  After :meth:`~MLLPDecoder.eof` the decoder is closed (one decoder per connection).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT", "Event", "Frame", "FrameAbandoned", "FrameTooLarge", "FramingConfig",
    "FramingError", "JunkSkipped", "MLLPDecoder", "TruncatedFrame", "describe_unframed",
    "encode_frame",
]

VT = b"\x0b"
FS = b"\x1c"
CR = b"\x0d"
_WHITESPACE = b"\r\n \t"
_PREVIEW = 32
_NAMES = {0x0B: "VT", 0x1C: "FS", 0x0D: "CR", 0x0A: "LF"}
_OPEN, _FAILED, _CLOSED = 0, 1, 2


class FramingError(Exception):
    """Misuse of a decoder (feed after failure or EOF) or an unencodable payload."""


@dataclass(frozen=True, slots=True)
class FramingConfig:
    """MLLP block characters and limits (one decoder per connection shares one config)."""

    start: bytes = VT
    end: bytes = FS + CR
    max_frame_bytes: int = 16 * 1024 * 1024
    require_end_cr: bool = True

    def __post_init__(self) -> None:
        if len(self.start) != 1 or self.start in _WHITESPACE:
            raise ValueError("start must be one non-whitespace byte")
        if len(self.end) not in (1, 2) or self.start in self.end or self.end[:1] in _WHITESPACE:
            raise ValueError("end must be 1 or 2 bytes, start with a non-whitespace byte "
                             "and not contain the start byte")
        if self.max_frame_bytes < 0:
            raise ValueError("max_frame_bytes must be >= 0")

    @property
    def terminator(self) -> bytes:
        """The byte string that ends a frame: ``end``, or only its first byte (FS)."""
        return self.end if self.require_end_cr else self.end[:1]


DEFAULT = FramingConfig()


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete payload, without VT and FS CR."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class JunkSkipped:
    """A run of non-whitespace bytes outside any frame was discarded."""

    bytes_count: int
    preview: bytes  # first 32 bytes of the run, for diagnostics only


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """The current frame exceeded the limit; the decoder is now failed."""

    size_so_far: int
    limit: int


@dataclass(frozen=True, slots=True)
class FrameAbandoned:
    """A VT arrived inside a frame: the partial payload was dropped, a new frame began."""

    partial_bytes: int


@dataclass(frozen=True, slots=True)
class TruncatedFrame:
    """The connection ended inside a frame (returned by :meth:`MLLPDecoder.eof`)."""

    partial_bytes: int


Event = Frame | JunkSkipped | FrameTooLarge | FrameAbandoned | TruncatedFrame


class MLLPDecoder:
    """Incremental MLLP decoder for one connection (server side or reading ACKs)."""

    __slots__ = ("_buf", "_end", "_junk", "_limit", "_preview", "_ps", "_scan", "_start",
                 "_state", "_tail")

    def __init__(self, cfg: FramingConfig = DEFAULT) -> None:
        # Single-byte searches (memchr) are ~8x faster than bytes.find(b"\x1c\r"), so the
        # decoder looks for FS and then checks the byte after it (the tail, CR or none).
        self._start = cfg.start[0]
        self._end = cfg.end[0]
        self._tail = cfg.terminator[1] if len(cfg.terminator) == 2 else -1
        self._limit = cfg.max_frame_bytes
        self._buf = bytearray()  # held bytes; when in a frame it starts at the payload
        self._ps = -1  # payload start in the buffer being scanned, -1 between frames
        self._scan = 0  # where to resume searching for the terminator
        self._junk = 0  # length of the current unreported junk run
        self._preview = b""
        self._state = _OPEN

    @property
    def in_frame(self) -> bool:
        """True between a start byte and the end of its frame (use the mid-frame timeout)."""
        return self._ps >= 0

    @property
    def buffered(self) -> int:
        """Bytes currently held (the partial frame's payload)."""
        return len(self._buf)

    @property
    def failed(self) -> bool:
        """True after :class:`FrameTooLarge`."""
        return self._state == _FAILED

    def feed_whole(self, data: bytes) -> bytes | None:
        """Fast path of :meth:`feed` for the usual read: exactly one complete frame
        (start byte, payload without start/end bytes, end + CR) while nothing is pending.
        Returns its payload, the decoder staying between frames; otherwise ``None``
        with nothing consumed (then call :meth:`feed`)."""
        n = len(data)
        if (self._ps >= 0 or self._junk or self._tail < 0 or self._state != _OPEN or n < 3
                or data[0] != self._start or data[-1] != self._tail
                or data[-2] != self._end or n - 3 > self._limit
                or data.find(self._end, 1) != n - 2 or data.find(self._start, 1) >= 0):
            return None
        return data[1:-2]

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completes, in stream order."""
        if self._state != _OPEN:
            raise FramingError("decoder is failed" if self._state == _FAILED
                               else "decoder is closed (eof() was called)")
        held = self._buf
        buf: bytes | bytearray
        if held:
            held += data
            buf = held
        else:
            buf = data  # fast path: scan the caller's bytes without copying
        n = len(buf)
        start, end, tail, limit = self._start, self._end, self._tail, self._limit
        events: list[Event] = []
        ps, scan = self._ps, self._scan
        while True:
            if ps < 0:  # between frames
                pos = scan
                i = buf.find(start, pos)
                if i < 0:
                    if pos < n:
                        self._gap(buf[pos:])
                    break
                if i > pos:
                    self._gap(buf[pos:i])
                if self._junk:
                    events.append(self._flush_junk())
                ps = scan = i + 1
            j = buf.find(end, scan)
            resume = n
            while tail >= 0 and j >= 0:
                if j + 1 == n:  # FS is the last byte so far: decide on the next read
                    resume, j = j, -1
                elif buf[j + 1] != tail:  # lone FS: payload (see module docstring)
                    j = buf.find(end, j + 1)
                    continue
                break
            k = buf.find(start, scan, n if j < 0 else j)
            if k >= 0:  # new VT before the end: abandon the partial frame
                if k - ps > limit:
                    return self._fail(events, k - ps)
                events.append(FrameAbandoned(k - ps))
                ps = scan = k + 1
                continue
            if j < 0:  # frame continues in a later chunk
                scan = resume
                if scan - ps > limit:
                    return self._fail(events, n - ps)
                break
            if j - ps > limit:
                return self._fail(events, j - ps)
            events.append(Frame(bytes(buf[ps:j])))
            ps, scan = -1, j + 1 if tail < 0 else j + 2
        if ps < 0:
            if held:
                held.clear()
            self._ps = -1
            self._scan = 0
        else:
            if buf is held:
                del held[:ps]
            else:
                held += memoryview(buf)[ps:]
            self._ps = 0
            self._scan = scan - ps
        return events

    def eof(self) -> list[Event]:
        """Connection closed: report a truncated frame or pending junk; close the decoder."""
        events: list[Event] = []
        if self._state == _OPEN:
            if self._ps >= 0:
                events.append(TruncatedFrame(len(self._buf) - self._ps))
            elif self._junk:
                events.append(self._flush_junk())
        self._state = _CLOSED
        self._buf = bytearray()
        self._ps = -1
        return events

    def _gap(self, seg: bytes | bytearray) -> None:
        """Account for inter-frame bytes: whitespace is silent, the rest joins a junk run."""
        if not self._junk:
            seg = seg.lstrip(_WHITESPACE)
            if not seg:
                return
        self._junk += len(seg)
        if len(self._preview) < _PREVIEW:
            self._preview += bytes(seg[: _PREVIEW - len(self._preview)])

    def _flush_junk(self) -> JunkSkipped:
        event = JunkSkipped(self._junk, self._preview)
        self._junk, self._preview = 0, b""
        return event

    def _fail(self, events: list[Event], size: int) -> list[Event]:
        events.append(FrameTooLarge(size, self._limit))
        self._state = _FAILED
        self._buf = bytearray()
        self._ps, self._scan = -1, 0
        return events


def encode_frame(payload: bytes, cfg: FramingConfig = DEFAULT) -> bytes:
    """Wrap ``payload`` in start/end bytes; payloads containing VT or FS are refused."""
    if cfg.start in payload or cfg.end[:1] in payload:
        raise FramingError(f"payload contains a {_name(cfg.start)} or {_name(cfg.end[:1])} "
                           "byte, which MLLP cannot carry")
    return cfg.start + payload + cfg.end


def describe_unframed(data: bytes, cfg: FramingConfig = DEFAULT, *,
                      total: int | None = None) -> str:
    """Explain why ``data`` (what a peer sent instead of a frame) did not decode.

    ``total`` overrides the byte count when ``data`` is only a preview (e.g.
    ``describe_unframed(ev.preview, total=ev.bytes_count)`` for a :class:`JunkSkipped`).
    """
    count = len(data) if total is None else total
    if not data:
        return f"received {count} bytes"
    i = data.find(cfg.start)
    if i < 0:
        return (f"received {count} bytes without a start byte ({_name(cfg.start)}): "
                f"{_quote(data)}")
    if data[:i].strip(_WHITESPACE):
        return (f"received {count} bytes, {i} of them before the start byte "
                f"({_name(cfg.start)}): {_quote(data[:i])}")
    body = data[i + 1:]
    if cfg.terminator not in body:
        return (f"received {count} bytes: frame started at offset {i} but has no end "
                f"({_name(cfg.terminator)}): {_quote(body)}")
    return f"received {count} bytes containing a complete frame at offset {i}"


def _name(marker: bytes) -> str:
    return " ".join(_NAMES.get(b, f"0x{b:02X}") for b in marker)


def _quote(data: bytes) -> str:
    text = repr(data[:_PREVIEW].decode("latin-1"))
    return text[:-1] + "..." + text[-1] if len(data) > _PREVIEW else text
