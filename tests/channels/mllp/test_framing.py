"""Behaviour of the sans-I/O MLLP framing state machine (channels.mllp.framing)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.mllp.framing import (
    DEFAULT,
    Event,
    Frame,
    FrameAbandoned,
    FrameTooLarge,
    FramingConfig,
    FramingError,
    JunkSkipped,
    MLLPDecoder,
    TruncatedFrame,
    describe_unframed,
    encode_frame,
)

VT, FS, CR, LF = b"\x0b", b"\x1c", b"\r", b"\n"
LENIENT = FramingConfig(require_end_cr=False)
MSG = b"MSH|^~\\&|RIS|RAD|PACS|RAD|20240101120000||ORM^O01|MSG00001|P|2.3\rPID|1||12345\r"


def feed_all(chunks: Iterable[bytes], cfg: FramingConfig = DEFAULT) -> list[Event]:
    """Feed every chunk, then signal EOF; return all events."""
    dec = MLLPDecoder(cfg)
    events: list[Event] = []
    for chunk in chunks:
        events += dec.feed(chunk)
    return events + dec.eof()


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


# Payloads over arbitrary bytes except VT/FS (mapped to other bytes so lengths are kept).
_NO_MARKERS = bytes.maketrans(VT + FS, b"vf")
# Plain st.binary() rarely goes past a few dozen bytes, so draw the length explicitly.
payloads = st.one_of(
    st.binary(max_size=64),
    st.integers(0, 5000).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
).map(lambda b: b.translate(_NO_MARKERS))
separators = st.sampled_from([b"", CR, LF, CR + LF])


# --- property: any payloads, any chunking ----------------------------------------------


@pytest.mark.parametrize("cfg", [DEFAULT, LENIENT], ids=["require_end_cr", "lenient"])
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_any_payloads_any_chunking_roundtrip_without_junk(
    cfg: FramingConfig, data: st.DataObject
) -> None:
    items = data.draw(st.lists(st.tuples(payloads, separators), max_size=8))
    stream = b"".join(encode_frame(p, cfg) + sep for p, sep in items)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    dec = MLLPDecoder(cfg)
    events: list[Event] = []
    for chunk in split(stream, cuts):
        events += dec.feed(chunk)
    assert not dec.in_frame
    assert dec.buffered == 0
    events += dec.eof()
    assert events == [Frame(p) for p, _ in items]


@pytest.mark.parametrize("cfg", [DEFAULT, LENIENT], ids=["require_end_cr", "lenient"])
@settings(max_examples=300)
@given(
    stream=st.lists(st.sampled_from([VT, FS, CR, LF, b" ", b"a", b"MSH|"]), max_size=60)
    .map(b"".join),
    cuts=st.lists(st.integers(0, 200), max_size=12),
    limit=st.integers(0, 12),
)
def test_events_do_not_depend_on_chunking(
    cfg: FramingConfig, stream: bytes, cuts: list[int], limit: int
) -> None:
    cfg = FramingConfig(require_end_cr=cfg.require_end_cr, max_frame_bytes=limit)
    cuts = [c for c in cuts if c <= len(stream)]

    def normalised(events: list[Event]) -> list[Event]:
        # Only the size at detection time may depend on where the chunks were cut.
        return [FrameTooLarge(0, e.limit) if isinstance(e, FrameTooLarge) else e
                for e in events]

    whole = feed_all([stream], cfg)
    chunked = _feed_until_failure(split(stream, cuts), cfg)
    assert normalised(chunked) == normalised(whole)
    for ev in chunked:
        if isinstance(ev, FrameTooLarge):
            assert ev.size_so_far > limit
        if isinstance(ev, Frame):
            assert len(ev.payload) <= limit


def _feed_until_failure(chunks: list[bytes], cfg: FramingConfig) -> list[Event]:
    dec = MLLPDecoder(cfg)
    events: list[Event] = []
    for chunk in chunks:
        events += dec.feed(chunk)
        if dec.failed:
            break
    return events + dec.eof()


# --- frames ------------------------------------------------------------------------------


def test_pipelined_frames_in_one_read_are_all_delivered() -> None:
    stream = b"".join(encode_frame(MSG + bytes([48 + i])) for i in range(5))
    assert feed_all([stream]) == [Frame(MSG + bytes([48 + i])) for i in range(5)]


def test_empty_frame_is_delivered_as_empty_payload() -> None:
    assert feed_all([VT + FS + CR]) == [Frame(b"")]


def test_frame_split_between_fs_and_cr() -> None:
    dec = MLLPDecoder()
    assert dec.feed(VT + MSG + FS) == []
    assert dec.in_frame
    assert dec.feed(CR) == [Frame(MSG)]
    assert not dec.in_frame


def test_frame_fed_one_byte_at_a_time() -> None:
    stream = encode_frame(MSG) + LF + encode_frame(b"second")
    assert feed_all([bytes([b]) for b in stream]) == [Frame(MSG), Frame(b"second")]


def test_in_frame_and_buffered_track_the_partial_frame() -> None:
    dec = MLLPDecoder()
    assert not dec.in_frame
    assert dec.buffered == 0
    dec.feed(CR + LF)
    assert not dec.in_frame
    dec.feed(VT)
    assert dec.in_frame
    dec.feed(b"MSH|")
    assert dec.buffered == 4
    dec.feed(b"x" + FS + CR + VT + b"ab")
    assert dec.in_frame
    assert dec.buffered == 2


def test_decoder_reads_acks_on_the_sender_side() -> None:
    ack = b"MSH|^~\\&|PACS|RAD|RIS|RAD|20240101120001||ACK|1|P|2.3\rMSA|AA|MSG00001\r"
    dec = MLLPDecoder()
    wire = encode_frame(ack)
    assert dec.feed(wire[:10]) == []
    assert dec.feed(wire[10:]) == [Frame(ack)]


# --- whitespace and junk -----------------------------------------------------------------


def test_trailing_lf_after_fs_cr_is_tolerated_silently() -> None:
    assert feed_all([encode_frame(MSG) + LF, encode_frame(MSG) + LF]) == [Frame(MSG)] * 2
    assert feed_all([encode_frame(MSG), LF]) == [Frame(MSG)]


def test_whitespace_between_frames_is_not_reported() -> None:
    stream = b" \t\r\n" + encode_frame(b"a") + b"\r\n\r\n \t" + encode_frame(b"b") + b"\n"
    assert feed_all([stream]) == [Frame(b"a"), Frame(b"b")]


def test_junk_before_vt_is_reported_once_and_frame_delivered_intact() -> None:
    events = feed_all([b"\r\nGET / HTTP/1.1\r\n" + encode_frame(MSG)])
    assert events == [JunkSkipped(16, b"GET / HTTP/1.1\r\n"), Frame(MSG)]


def test_junk_run_split_across_reads_is_reported_once() -> None:
    junk = b"x" * 100
    events = feed_all([junk[:10], junk[10:60], junk[60:] + VT + b"ok", FS + CR])
    assert events == [JunkSkipped(100, b"x" * 32), Frame(b"ok")]


def test_each_run_of_junk_gets_its_own_event() -> None:
    stream = b"aa" + encode_frame(b"1") + b"bbb" + encode_frame(b"2") + encode_frame(b"3")
    assert feed_all([stream]) == [JunkSkipped(2, b"aa"), Frame(b"1"),
                                  JunkSkipped(3, b"bbb"), Frame(b"2"), Frame(b"3")]


def test_junk_at_connection_close_is_reported_by_eof() -> None:
    dec = MLLPDecoder()
    assert dec.feed(encode_frame(b"1") + b"trailing junk") == [Frame(b"1")]
    assert dec.eof() == [JunkSkipped(13, b"trailing junk")]


# --- FS handling -------------------------------------------------------------------------


def test_lone_fs_is_payload_when_cr_is_required() -> None:
    # The spec forbids FS in payloads; we keep it (frame ends only at FS CR) and let the
    # HL7 layer reject the content, rather than dropping data or guessing a boundary.
    assert feed_all([VT + b"a" + FS + b"b" + FS + CR]) == [Frame(b"a" + FS + b"b")]
    assert feed_all([VT + b"a" + FS, b"b" + FS, CR]) == [Frame(b"a" + FS + b"b")]


def test_lone_fs_ends_the_frame_when_cr_is_not_required() -> None:
    events = feed_all([VT + b"a" + FS + b"b" + VT + b"c" + FS + VT + b"d" + FS + CR], LENIENT)
    assert events == [Frame(b"a"), JunkSkipped(1, b"b"), Frame(b"c"), Frame(b"d")]


def test_fs_then_cr_split_when_cr_is_not_required() -> None:
    dec = MLLPDecoder(LENIENT)
    assert dec.feed(VT + b"a" + FS) == [Frame(b"a")]
    assert not dec.in_frame
    assert dec.feed(CR) == []
    assert dec.eof() == []


# --- VT inside a frame -------------------------------------------------------------------


def test_vt_inside_frame_abandons_partial_and_starts_new_frame() -> None:
    assert feed_all([VT + b"partial" + VT + MSG + FS + CR]) == [FrameAbandoned(7), Frame(MSG)]


def test_vt_inside_frame_across_reads() -> None:
    dec = MLLPDecoder()
    assert dec.feed(VT + b"part") == []
    assert dec.feed(b"ial" + FS) == []
    assert dec.feed(VT + b"new") == [FrameAbandoned(8)]
    assert dec.feed(FS + CR) == [Frame(b"new")]


# --- size limit --------------------------------------------------------------------------


def test_frame_over_limit_fails_once_without_buffering_it_all() -> None:
    limit, chunk = 10_000, 1_000
    stream = encode_frame(b"x" * 50_000)
    dec = MLLPDecoder(FramingConfig(max_frame_bytes=limit))
    events: list[Event] = []
    for i in range(0, len(stream), chunk):
        events += dec.feed(stream[i:i + chunk])
        assert dec.buffered <= limit + chunk
        if dec.failed:
            break
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev, FrameTooLarge)
    assert ev.limit == limit
    assert limit < ev.size_so_far <= limit + chunk
    assert dec.buffered == 0
    assert not dec.in_frame
    with pytest.raises(FramingError):
        dec.feed(encode_frame(b"ok"))
    assert dec.eof() == []


def test_frame_exactly_at_limit_is_accepted() -> None:
    cfg = FramingConfig(max_frame_bytes=100)
    assert feed_all([encode_frame(b"x" * 100)], cfg) == [Frame(b"x" * 100)]
    assert feed_all([encode_frame(b"x" * 100)[:-1], CR], cfg) == [Frame(b"x" * 100)]


def test_complete_frame_over_limit_in_one_read_after_good_frames() -> None:
    cfg = FramingConfig(max_frame_bytes=100)
    dec = MLLPDecoder(cfg)
    events = dec.feed(encode_frame(b"ok") + encode_frame(b"x" * 101) + encode_frame(b"no"))
    assert events == [Frame(b"ok"), FrameTooLarge(101, 100)]
    assert dec.failed


# --- EOF ---------------------------------------------------------------------------------


def test_eof_mid_frame_reports_truncation_and_no_frame() -> None:
    dec = MLLPDecoder()
    assert dec.feed(VT + MSG[:20]) == []
    assert dec.eof() == [TruncatedFrame(20)]
    with pytest.raises(FramingError):
        dec.feed(b"more")
    assert dec.eof() == []


def test_eof_between_fs_and_cr_is_a_truncation() -> None:
    assert feed_all([VT + b"abc" + FS]) == [TruncatedFrame(4)]


def test_eof_when_idle_reports_nothing() -> None:
    assert feed_all([encode_frame(MSG) + CR + LF]) == [Frame(MSG)]
    assert feed_all([]) == []


# --- encoding, config, diagnostics -------------------------------------------------------


def test_custom_block_characters() -> None:
    cfg = FramingConfig(start=b"\x02", end=b"\x03\x04")
    stream = encode_frame(b"a\x0b\x1c", cfg) + encode_frame(b"b", cfg)
    assert stream == b"\x02a\x0b\x1c\x03\x04\x02b\x03\x04"
    assert feed_all([stream[:5], stream[5:]], cfg) == [Frame(b"a\x0b\x1c"), Frame(b"b")]


def test_encode_frame_wraps_payload() -> None:
    assert encode_frame(b"abc") == VT + b"abc" + FS + CR


@pytest.mark.parametrize("bad", [b"a" + VT, FS + b"a", b"a" + FS + CR])
def test_encode_frame_refuses_block_characters(bad: bytes) -> None:
    with pytest.raises(FramingError):
        encode_frame(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"start": b""}, {"start": b"\x0b\x0b"}, {"start": b"\n"}, {"end": b""},
     {"end": b"\x0b\r"}, {"end": b"\r"}, {"max_frame_bytes": -1}],
)
def test_invalid_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FramingConfig(**kwargs)  # type: ignore[arg-type]


def test_describe_unframed_explains_missing_start_byte() -> None:
    data = b"MSH|^~\\&|" + b"x" * 48
    text = describe_unframed(data)
    assert text.startswith("received 57 bytes without a start byte (VT): 'MSH|^~\\\\&|")
    assert text.endswith("...'")


def test_describe_unframed_other_cases() -> None:
    assert describe_unframed(b"") == "received 0 bytes"
    assert "2 of them before the start byte" in describe_unframed(b"ab" + VT + b"x")
    assert "no end (FS CR)" in describe_unframed(VT + b"MSH|" + FS)
    assert "complete frame" in describe_unframed(encode_frame(b"x"))
    ev = JunkSkipped(500, b"HTTP/1.1 400 Bad Request")
    assert describe_unframed(ev.preview, total=ev.bytes_count).startswith("received 500 bytes")


# --- micro-benchmark (never part of pass/fail) -------------------------------------------


def _bench(seconds: float = 1.0) -> None:
    """Print decode throughput (run from the repo root).

    `.venv/bin/python -m tests.channels.mllp.test_framing`
    """
    payload = (MSG * 20)[:1300]
    frame = encode_frame(payload)

    def rate(label: str, chunks: list[bytes], frames_per_round: int) -> None:
        dec = MLLPDecoder()
        feed = dec.feed
        rounds, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            for chunk in chunks:
                feed(chunk)
            rounds += 1
        total = rounds * frames_per_round
        print(f"{label:<44} {total / elapsed:>12,.0f} frames/s")

    rate("1.3 KB frame, one frame per feed()", [frame], 1)
    rate("1.3 KB frames, 10 frames per feed()", [frame * 10], 10)
    rate("1.3 KB frame split in 3 chunks", [frame[:100], frame[100:1000], frame[1000:]], 1)
    big = encode_frame(b"x" * 4 * 1024 * 1024)
    rate("4 MB frame in 1 KB chunks", [big[i:i + 1024] for i in range(0, len(big), 1024)], 1)


if __name__ == "__main__":
    _bench()


# --- feed_whole: the one-frame fast path is feed() when it answers ------------------------

_noisy = st.lists(st.sampled_from([VT, FS, CR, LF, b"x", b"MSH|", VT + b"A" + FS + CR]),
                  max_size=12).map(b"".join)


@pytest.mark.parametrize("cfg", [DEFAULT, LENIENT, FramingConfig(max_frame_bytes=1024)],
                         ids=["require_end_cr", "lenient", "small_limit"])
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_feed_whole_gives_what_feed_gives(cfg: FramingConfig, data: st.DataObject) -> None:
    items = data.draw(st.lists(st.tuples(payloads, separators), max_size=4))
    stream = b"".join(encode_frame(p, cfg) + sep for p, sep in items)
    stream = stream + data.draw(_noisy) if data.draw(st.booleans()) else stream
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    fast, slow = MLLPDecoder(cfg), MLLPDecoder(cfg)
    got: list[Event] = []
    want: list[Event] = []
    for chunk in split(stream, cuts):
        want += slow.feed(chunk)
        payload = fast.feed_whole(chunk)
        got += [Frame(payload)] if payload is not None else fast.feed(chunk)
        if slow.failed:
            break
    assert got == want
    if not slow.failed:
        assert fast.eof() == slow.eof()


def test_feed_whole_takes_exactly_one_whole_frame() -> None:
    dec = MLLPDecoder()
    assert dec.feed_whole(VT + MSG + FS + CR) == MSG
    assert dec.feed_whole(VT + MSG + FS + CR + VT + MSG + FS + CR) is None  # two frames
    assert dec.feed_whole(VT + MSG) is None  # partial
    assert dec.feed(VT + MSG) == [] and dec.in_frame
    assert dec.feed_whole(FS + CR) is None  # not while a frame is pending
    assert dec.feed(FS + CR) == [Frame(MSG)]
    assert MLLPDecoder(FramingConfig(max_frame_bytes=1024)).feed_whole(
        VT + b"x" * 1025 + FS + CR) is None  # over the limit: feed() reports it
