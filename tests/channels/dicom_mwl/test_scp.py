"""The worklist SCP over loopback: real SCUs, failure statuses, cancel, limits, clean stop."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from channels.dicom_mwl.scp import MWLSCP
from engine import registry
from engine.dicom.scu import tcp_nodelay_handlers
from engine.errors import BindError, ChannelError
from engine.logging import configure_logging
from engine.store.sqlite import SQLiteStore
from tests.channels.dicom_mwl.conftest import (
    load,
    need,
    run_tool,
    running_scp,
    scp_config,
)

MWL = ModalityWorklistInformationFind


def nodelay_of(assoc: Any) -> int:
    """TCP_NODELAY of an association's socket."""
    sock = assoc.dul.socket.socket
    assert sock is not None
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def port_of(scp: MWLSCP) -> int:
    """The port the running SCP is bound to."""
    assert scp.bound_port is not None
    return scp.bound_port


Responses = list[tuple[int, Dataset | None]]


def step(i: int, station: str = "CT1", name: str = "TEST^PATIENT", **top: Any) -> dict[str, Any]:
    return {
        "SpecificCharacterSet": "ISO_IR 192", "PatientName": name, "PatientID": f"P{i}",
        "AccessionNumber": f"A{i:05d}", "StudyInstanceUID": f"2.25.{i}", **top,
        "ScheduledProcedureStepSequence": [{
            "Modality": "CT", "ScheduledStationAETitle": station,
            "ScheduledProcedureStepStartDate": "20261122",
            "ScheduledProcedureStepStartTime": f"{8 + i % 10:02d}00",
            "ScheduledProcedureStepID": f"S{i}",
        }],
    }


def query(**sps: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.AccessionNumber = ""
    item = Dataset()
    item.Modality = ""
    for keyword, value in sps.items():
        setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def find(port: int, ds: Dataset, calling: str = "MODALITY", called: str = "RADBRIDGE",
         on_pending: Callable[[Any, int], None] | None = None) -> Responses:
    """A pynetdicom SCU: associate, C-FIND, release (run in a worker thread)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(MWL)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        raise ConnectionRefusedError("association rejected")
    out: Responses = []
    try:
        for status, identifier in assoc.send_c_find(ds, MWL):
            out.append((int(status.Status), identifier))
            if status.Status == 0xFF00 and on_pending is not None:
                on_pending(assoc, len(out))
    finally:
        assoc.release()
    return out


def final(responses: Responses) -> int:
    return responses[-1][0]


async def test_c_echo_is_answered_success(store: SQLiteStore) -> None:
    echoscu = need("echoscu")
    async with running_scp(store) as scp:
        done = await run_tool(echoscu, "-aet", "MODALITY", "-aec", "RADBRIDGE", "127.0.0.1",
                              str(port_of(scp)))
    assert done.returncode == 0, done.stderr


async def test_one_pending_response_per_step_then_success(store: SQLiteStore) -> None:
    await load(store, [step(i) for i in range(5)] + [step(9, station="MR1")])
    async with running_scp(store) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query(ScheduledStationAETitle="CT1"))
    assert [s for s, _ in rsp] == [0xFF00] * 5 + [0x0000]
    assert [d.AccessionNumber for _, d in rsp[:-1] if d is not None] == [
        "A00000", "A00001", "A00002", "A00003", "A00004"]


async def test_non_ascii_names_reach_the_modality_intact(store: SQLiteStore) -> None:
    await load(store, [step(1, name="Müller^Anna"), step(2, name="山田^太郎")])
    async with running_scp(store) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query())
    names = {str(d.PatientName): d.SpecificCharacterSet for _, d in rsp[:-1] if d is not None}
    assert names == {"Müller^Anna": "ISO_IR 192", "山田^太郎": "ISO_IR 192"}


class SlowStore:
    """A store whose reads take longer than the SCP's query timeout."""

    def __init__(self, store: SQLiteStore, delay: float) -> None:
        self.store, self.delay = store, delay

    async def read_tx(self, fn: Callable[[Any], Any]) -> Any:
        await asyncio.sleep(self.delay)
        return await self.store.read_tx(fn)


async def test_query_timeout_answers_unable_to_process_not_an_empty_success(
    store: SQLiteStore,
) -> None:
    await load(store, [step(1)])
    async with running_scp(SlowStore(store, 2.0), query_timeout_s=0.2) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query())
    assert [s for s, _ in rsp] == [0xC001]


async def test_store_failure_answers_unable_to_process(tmp_path: Any) -> None:
    closed = SQLiteStore(tmp_path / "never-opened.sqlite")
    async with running_scp(closed) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query())
    assert final(rsp) == 0xC001


async def test_too_many_matches_are_refused_so_the_modality_narrows_the_query(
    store: SQLiteStore,
) -> None:
    await load(store, [step(i) for i in range(6)])
    async with running_scp(store, max_responses=5) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query())
        exact = await asyncio.to_thread(find, port_of(scp),
                                        query(ScheduledProcedureStepID="S1"))
    assert [s for s, _ in rsp] == [0xA700]
    assert final(exact) == 0x0000


async def test_uninterpretable_query_is_answered_a900(store: SQLiteStore) -> None:
    ds = query()
    tag = Tag("ScheduledProcedureStepStartDate")  # bypass pydicom's client-side validation
    ds.ScheduledProcedureStepSequence[0][tag] = RawDataElement(tag, "DA", 8, b"20261399", 0,
                                                               True, True)
    async with running_scp(store) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), ds)
    assert [s for s, _ in rsp] == [0xA900]


async def test_c_cancel_stops_the_responses_with_status_fe00(store: SQLiteStore) -> None:
    await load(store, [step(i) for i in range(3000)])

    def cancel_after_first(assoc: Any, count: int) -> None:
        if count == 1:
            assoc.send_c_cancel(1, assoc.accepted_contexts[0].context_id)

    async with running_scp(store, max_responses=5000) as scp:
        rsp = await asyncio.to_thread(find, port_of(scp), query(), on_pending=cancel_after_first)
    assert final(rsp) == 0xFE00
    assert len(rsp) < 3000


async def test_station_coercion_restricts_a_query_to_the_calling_ae(store: SQLiteStore) -> None:
    await load(store, [step(1, station="CT1"), step(2, station="MR1")])
    async with running_scp(store, station_coercion=True) as scp:
        mine = await asyncio.to_thread(find, port_of(scp), query(), "MR1")
        asked = await asyncio.to_thread(find, port_of(scp),
                                        query(ScheduledStationAETitle="CT1"), "MR1")
    assert [d.AccessionNumber for _, d in mine[:-1] if d is not None] == ["A00002"]
    assert [d.AccessionNumber for _, d in asked[:-1] if d is not None] == ["A00001"]


async def test_unlisted_calling_ae_and_wrong_called_ae_are_rejected(store: SQLiteStore) -> None:
    async with running_scp(store, allowed_calling_aes=["CT1"], require_called_ae=True) as scp:
        port = port_of(scp)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(find, port, query(), "INTRUDER")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(find, port, query(), "CT1", "OTHERAE")
        ok = await asyncio.to_thread(find, port, query(), "CT1")
    assert final(ok) == 0x0000


async def test_many_concurrent_associations_each_get_their_own_answer(store: SQLiteStore) -> None:
    await load(store, [step(i, station=f"ST{i % 8}") for i in range(80)])
    async with running_scp(store) as scp:
        results = await asyncio.gather(*(
            asyncio.to_thread(find, port_of(scp), query(ScheduledStationAETitle=f"ST{n}"))
            for n in range(8) for _ in range(3)))
    for responses in results:
        assert [s for s, _ in responses] == [0xFF00] * 10 + [0x0000]


async def test_accepted_sockets_have_tcp_nodelay(store: SQLiteStore) -> None:
    async with running_scp(store) as scp:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(MWL)
        assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port_of(scp),
                                        ae_title="RADBRIDGE")
        try:
            assert scp.server is not None
            (acceptor,) = scp.server.active_associations
            assert nodelay_of(acceptor) != 0
        finally:
            await asyncio.to_thread(assoc.release)


async def test_scu_helper_sets_tcp_nodelay_on_its_own_socket_only(store: SQLiteStore) -> None:
    async with running_scp(store) as scp:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(MWL)
        fast = await asyncio.to_thread(ae.associate, "127.0.0.1", port_of(scp),
                                       ae_title="RADBRIDGE", evt_handlers=tcp_nodelay_handlers())
        plain = await asyncio.to_thread(ae.associate, "127.0.0.1", port_of(scp),
                                        ae_title="RADBRIDGE")
        try:
            nodelay = [nodelay_of(a) for a in (fast, plain)]
        finally:
            await asyncio.to_thread(fast.release)
            await asyncio.to_thread(plain.release)
    assert nodelay[0] != 0 and nodelay[1] == 0


async def test_identifiers_never_reach_a_log_line(store: SQLiteStore,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    try:
        await load(store, [step(1, name="SECRET^NAME", PatientBirthDate="19800214")])
        async with running_scp(store) as scp:
            logging.getLogger("pynetdicom").setLevel(logging.DEBUG)  # even when asked
            with caplog.at_level(logging.DEBUG):
                rsp = await asyncio.to_thread(find, port_of(scp), query(PatientName="SECRET*"))
    finally:
        configure_logging("info", "json", stream=io.StringIO())
    assert final(rsp) == 0x0000 and len(rsp) == 2
    text = stream.getvalue() + caplog.text
    assert "SECRET" not in text and "19800214" not in text and "P1" not in text
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    summary = [line for line in lines if line["event"] == "worklist_queried"]
    assert summary and summary[0]["count"] == 1 and summary[0]["status"] == "0x0000"


async def test_stopping_closes_the_port_and_ends_every_association_thread(
    store: SQLiteStore,
) -> None:
    async with running_scp(store) as scp:
        port = port_of(scp)
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(MWL)
        idle = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RADBRIDGE")
        assert idle.is_established
    assert port is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    await asyncio.to_thread(idle.join, 5)
    assert not idle.is_established
    assert not [t for t in threading.enumerate() if t.name.startswith("AcceptorThread")
                and t.is_alive()]


async def test_port_in_use_is_a_bind_error(store: SQLiteStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        scp = MWLSCP("mwl", scp_config(port=taken.getsockname()[1]), store=store)
        with pytest.raises(BindError, match="cannot listen"):
            await scp.run(_never, lambda: None)


async def test_scp_without_a_store_refuses_to_start() -> None:
    with pytest.raises(ChannelError, match="needs the engine store"):
        await MWLSCP("mwl", scp_config()).run(_never, lambda: None)


async def _never(raw: bytes, peer: str) -> Any:
    raise AssertionError


def test_source_type_is_registered_with_its_config_model() -> None:
    assert registry._sources["dicom_mwl_scp"] is MWLSCP
    cfg = MWLSCP.config_model.model_validate({"type": "dicom_mwl_scp"})
    assert (cfg.port, cfg.ae_title, cfg.station_coercion) == (11112, "RADBRIDGE", False)


@pytest.mark.parametrize("bad", [{"ae_title": "A\\B"}, {"ae_title": "    "},
                                 {"ae_title": "X" * 17}, {"allowed_calling_aes": [""]},
                                 {"hidden_statuses": ["DONE"]}, {"unknown": 1}])
def test_invalid_config_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        scp_config(**bad)


async def test_a_failure_after_the_bind_releases_the_port(store: SQLiteStore) -> None:
    scp = MWLSCP("mwl", scp_config(port=0), store=store)

    def ready() -> None:
        raise RuntimeError("ready failed")

    with pytest.raises(RuntimeError, match="ready failed"):
        await scp.run(_never, ready)
    assert port_of(scp)
    assert scp.server is None
    with socket.socket() as again:  # the runtime's restart binds the same port
        again.bind(("127.0.0.1", port_of(scp)))
