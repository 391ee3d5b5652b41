"""The channel pipeline in-process: every outcome is an answer and a stored record."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreError
from engine.metrics import Metrics
from engine.router import ChannelPipeline, PipelineSettings, Route, decode, type_matches
from engine.store.base import Store
from engine.store.sqlite import SQLiteStore
from tests.support.client import msa, orm, segment

ADT = (b"MSH|^~\\&|ADT|H|RB|H|20261122||ADT^A08|ADT1|P|2.3.1\r"
       b"EVN|A08|20261122\rPID|1||P1^^^H^MR||DOE^JANE||19800101|F\r")




def pipeline(store: SQLiteStore, **kw: object) -> tuple[ChannelPipeline, list[int]]:
    notified: list[int] = []
    routes = [
        Route("ch/all", [], "destination", "", lambda: notified.append(1)),
        Route("ch/orders", ["ORM^*"], "key", "PID-3.1", lambda: notified.append(2)),
    ]
    return ChannelPipeline("ch", PipelineSettings(**kw), routes, store, Metrics()), notified  # type: ignore[arg-type]


async def test_order_is_acked_stored_and_routed_by_type(store: SQLiteStore) -> None:
    p, notified = pipeline(store)
    res = await p.dispatch(orm(1), "peer")
    assert res.accepted and msa(res.ack)[1:3] == ["AA", "MSG000001"]
    detail = await store.get_message(res.message_id or 0)
    assert detail is not None and detail.summary.status == "processed"
    assert [d.destination for d in detail.deliveries] == ["ch/all", "ch/orders"]
    assert sorted(notified) == [1, 2]
    rows = await store.fetch_pending("ch/orders", 10)
    assert rows[0].order_key == "PAT10001"
    res = await p.dispatch(ADT, "peer")
    detail = await store.get_message(res.message_id or 0)
    assert detail is not None and [d.destination for d in detail.deliveries] == ["ch/all"]


async def test_message_type_not_accepted_is_answered_ar_and_recorded(store: SQLiteStore) -> None:
    p, _ = pipeline(store, accept_message_types=["ORM^O01"])
    res = await p.dispatch(ADT, "peer")
    assert not res.accepted and msa(res.ack)[1] == "AR"
    assert "ADT^A08 is not accepted" in res.reason
    assert r"ADT\S\A08 is not accepted" in res.ack.decode()  # escaped in MSA-3
    assert "200" in segment(res.ack, "ERR")
    detail = await store.get_message(res.message_id or 0)
    assert detail is not None and detail.summary.status == "rejected" and not detail.deliveries


async def test_empty_control_id_is_rejected(store: SQLiteStore) -> None:
    p, _ = pipeline(store)
    res = await p.dispatch(orm(1).replace(b"MSG000001", b""), "peer")
    assert msa(res.ack)[1] == "AR" and b"MSH-10" in res.ack


async def test_structure_validation_warn_records_and_strict_rejects(store: SQLiteStore) -> None:
    bad = orm(1).replace(b"PID|", b"PID|1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|17|18|19|20|21|"
                         b"22|23|24|25|26|27|28|29|30|31|32|33|34|35|36|37|38|39|40|", 1)
    warn, _ = pipeline(store, validation="warn")
    res = await warn.dispatch(bad, "peer")
    assert res.accepted
    detail = await store.get_message(res.message_id or 0)
    assert detail is not None and detail.warnings and detail.warnings[0].startswith("structure:")
    strict, _ = pipeline(store, validation="strict")
    res = await strict.dispatch(bad, "peer")
    assert not res.accepted and msa(res.ack)[1] == "AE"


async def test_store_failure_is_answered_ae_never_aa(store: SQLiteStore) -> None:
    p, notified = pipeline(store)

    async def broken(*_a: object) -> tuple[int, None]:
        raise StoreError("disk full")

    store.ingest = broken  # type: ignore[method-assign,assignment]
    res = await p.dispatch(orm(1), "peer")
    assert not res.accepted and msa(res.ack)[1] == "AE"
    assert b"could not be stored" in res.ack
    assert notified == []


async def test_store_failure_on_the_lean_path_is_answered_ae(store: SQLiteStore) -> None:
    p, notified = pipeline(store)
    assert (await p.dispatch(orm(1), "peer")).accepted  # the type is known from now on

    def broken(*_a: object) -> None:
        raise StoreError("disk full")

    store.ingest_nowait = broken  # type: ignore[method-assign,assignment]
    notified.clear()
    res = await p.dispatch(orm(2), "peer")
    assert not res.accepted and msa(res.ack)[1:3] == ["AE", "MSG000002"]
    assert b"could not be stored" in res.ack
    assert notified == []
    del store.ingest_nowait
    await store.aclose()  # a closed store refuses the ingest: answered AE as well
    res = await p.dispatch(orm(3), "peer")
    assert not res.accepted and msa(res.ack)[1] == "AE"


def test_decode_uses_msh18_then_fallback() -> None:
    latin = "MSH|^~\\&|A|B|C|D|2026||ORM^O01|1|P|2.3.1||||||8859/1\rPID|1||X||MÜLLER\r"
    text, codec = decode(latin.encode("latin-1"), "utf-8")
    assert ("MÜLLER" in text and "8859" in codec.replace("_", "").replace("-", "")) or \
        codec.startswith("iso8859")
    text, codec = decode("MSH|^~\\&|A|B|C|D|2026||ORM^O01|1|P|2.3.1\rPID|1||X||É\r"
                         .encode("latin-1"), "utf-8")
    assert codec == "latin-1" and "É" in text
    text, codec = decode("MSH|^~\\&|A|B|C|D|2026||ORM^O01|1|P|2.3.1\rPID|1||X||É\r"
                         .encode(), "utf-8")
    assert codec == "utf-8" and "É" in text


@pytest.mark.parametrize(
    ("mtype", "patterns", "expected"),
    [("ORM^O01", [], True), ("ORM^O01", ["ORM^O01"], True), ("ADT^A08", ["ADT^*"], True),
     ("ADT^A08", ["ORM^O01", "OMI^O23"], False)],
)
def test_type_matches(mtype: str, patterns: list[str], expected: bool) -> None:
    assert type_matches(mtype, patterns) is expected


def _header(i: int, tail: str) -> bytes:
    return orm(i).replace(b"|P|2.3.1\r", f"|P|2.3.1{tail}\r".encode(), 1)


LEAN_CASES = [
    orm(1),
    ADT,
    _header(2, "|||NE"),  # MSH-15 NE: no accept ACK
    _header(3, "|||AL|NE"),  # enhanced mode: CA
    _header(4, "|||ER"),
    _header(5, "||||||8859/1"),
    _header(6, "||||||UNICODE UTF-8").replace(b"ALICE", "ALÏCE".encode()),  # not ASCII
    "MSH|^~\\&|R|H|B|H|2026||ORM^O01|L7|P|2.3.1||||||8859/1\rPID|1||P^^^H||ÉVA\r".encode(
        "latin-1"),
    "MSH|^~\\&|R|H|B|H|2026||ORM^O01|L12|P|2.5||||||UNICODE UTF-16\rPID|1||P^^^H||ÉVA\r"
    .encode("utf-16"),  # not ASCII-compatible: the ACK in UTF-16 too
    # (the cases above take the lean path, those below the general one)
    orm(8).replace(b"2.3.1", b"9.9"),  # unsupported version: rejected
    orm(9).replace(b"ORM^O01", b"ORU^R01"),  # not accepted
    orm(10).replace(b"MSG000010", b""),  # empty control id
    b"MSH|^~\\&|R|H|B|H|2026||ORM^O01|L11|P|2.3.1\rbad segment\r",  # parse error
]


LEAN_ENDS = 9


def _ack_without_time_and_id(ack: bytes) -> list[str]:
    segs = ack.decode("latin-1").split("\r")
    msh = segs[0].split("|")
    if len(msh) > 9:
        msh[6] = msh[9] = ""
    return ["|".join(msh), *segs[1:]]


async def _answer(p: ChannelPipeline, mode: str, raw: bytes) -> bytes:
    """The wire answer for ``raw``: through the fast lane (``submit``, falling back to
    ``dispatch`` as a source does when it declines) or through ``dispatch``."""
    if mode == "submit":
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if p.submit(raw, "peer", got.set_result):
            return await asyncio.wait_for(got, 5)
    return (await p.dispatch(raw, "peer")).ack


@pytest.mark.parametrize("raw", LEAN_CASES)
async def test_fast_lane_and_lean_path_answer_and_store_like_the_general_path(
    tmp_path: Path, raw: bytes
) -> None:
    results = []
    lean_case = LEAN_CASES.index(raw) < LEAN_ENDS
    for mode in ("submit", "lean", "general"):
        s = SQLiteStore(tmp_path / f"{mode}.db")
        await s.open()
        try:
            p, notified = pipeline(s, accept_message_types=["ORM^O01", "ADT^*"])
            assert p._lean_ok
            for mtype in ("ORM^O01", "ADT^A08", "ORU^R01"):  # as after a first message
                p._type_ok[mtype] = p._accept(mtype)
            p._lean_ok = mode != "general"
            if mode == "lean":
                assert (p._lean(raw) is not None) == lean_case
            ack = await _answer(p, mode, raw)
            detail = await s.get_message(1)
            assert detail is not None
            sm = detail.summary
            rows = await s.fetch_pending("ch/orders", 10)
            m = p.metrics
            results.append((
                _ack_without_time_and_id(ack) if ack else [], sm.status, sm.ack_code,
                sm.control_id, sm.message_type, sm.error, detail.charset, detail.version,
                detail.raw, [d.destination for d in detail.deliveries],
                [r.order_key for r in rows], sorted(notified),
                m.received.labels("ch").value, m.acked.labels("ch").value,
            ))
        finally:
            await s.aclose()
    assert results[0] == results[2]
    assert results[1] == results[2]


async def test_fast_lane_answers_in_submit_order_across_commits(store: SQLiteStore) -> None:
    p, _ = pipeline(store)
    assert (await p.dispatch(orm(0), "peer")).accepted  # the type is known from now on
    answers: list[bytes] = []
    for i in range(1, 41):
        assert p.submit(orm(i), "peer", answers.append)
        if i % 7 == 0:
            await asyncio.sleep(0)  # some in a later commit
    for _ in range(500):
        if len(answers) == 40:
            break
        await asyncio.sleep(0.01)
    assert [msa(a)[1:3] for a in answers] == [["AA", f"MSG{i:06d}"] for i in range(1, 41)]
    stored = [(await store.get_message(i + 1)) for i in range(1, 41)]
    assert [d.summary.control_id for d in stored if d] == [f"MSG{i:06d}" for i in range(1, 41)]


async def test_fast_lane_store_failure_is_answered_ae(store: SQLiteStore) -> None:
    p, notified = pipeline(store)
    assert (await p.dispatch(orm(1), "peer")).accepted
    notified.clear()

    def failing(_rec: object, _dels: object, done: Any) -> None:
        done.set_exception(StoreError("disk full"))

    store.ingest_then = failing  # type: ignore[method-assign,assignment]
    answers: list[bytes] = []
    assert p.submit(orm(2), "peer", answers.append)
    assert msa(answers[0])[1:3] == ["AE", "MSG000002"] and b"could not be stored" in answers[0]
    assert notified == []
    assert p.metrics.nacked.labels("ch", "AE").value == 1
    del store.ingest_then
    await store.aclose()  # a closed store refuses at once: the source falls back to dispatch
    assert not p.submit(orm(3), "peer", answers.append)
    assert len(answers) == 1


async def test_base_store_ingest_then_completes_after_the_commit(store: SQLiteStore) -> None:
    p, _ = pipeline(store)
    assert (await p.dispatch(orm(1), "peer")).accepted
    answers: list[bytes] = []
    store.ingest_then = functools.partial(Store.ingest_then, store)  # type: ignore[method-assign]
    assert p.submit(orm(2), "peer", answers.append)
    assert answers == []  # nothing before the commit
    for _ in range(500):
        if answers:
            break
        await asyncio.sleep(0.01)
    assert msa(answers[0])[1:3] == ["AA", "MSG000002"]
    detail = await store.get_message(2)
    assert detail is not None and detail.summary.control_id == "MSG000002"


def test_lean_path_takes_plain_messages_only(tmp_path: Path) -> None:
    p, _ = pipeline(None, accept_message_types=["ORM^O01"])  # type: ignore[arg-type]
    p._type_ok["ORM^O01"] = True  # as after the first message of that type
    assert p._lean(orm(1)) is not None
    assert p._lean(_header(2, "||||||UNICODE UTF-16")) is None  # not ASCII-compatible
    assert p._lean(orm(3).replace(b"2.3.1", b"9.9")) is None
    mapped, _ = pipeline(None, validation="warn")  # type: ignore[arg-type]
    assert not mapped._lean_ok
