"""The mqtt_publisher destination and engine events against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from channels.mqtt import MQTTPublisher, MQTTPublisherConfig
from engine import events
from engine.config.models import RetryConfig
from engine.delivery import DeliveryWorker
from engine.errors import PermanentDelivery, RetryableDelivery
from engine.metrics import Metrics
from engine.store.sqlite import SQLiteStore
from tests.support.mosquitto import Mosquitto, Subscriber, need_mosquitto
from tests.support.peers import free_port


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    need_mosquitto()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def events_on() -> Iterator[None]:
    events.configure(events.DEFAULT_QUEUE)
    try:
        yield
    finally:
        events.configure(None)


def publisher(url: str, **extra: Any) -> MQTTPublisher:
    cfg = MQTTPublisherConfig.model_validate(
        {"name": "mqtt", "type": "mqtt_publisher", "url": url, "connect_timeout_s": 2,
         "publish_timeout_s": 3, **extra})
    return MQTTPublisher("_events/mqtt", cfg)


def received(sub: Subscriber, n: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sub.lines()) < n:
        time.sleep(0.05)
    return sub.lines()


async def eventually(pred: Callable[[], Awaitable[bool]], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    for _ in range(int(within_s / 0.05) + 1):
        if await pred() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return await pred()


def started_event(n: int = 1, **extra: Any) -> events.ProcedureStarted:
    return events.ProcedureStarted(channel="modalities",
                                   accession_number=f"ACC{n:04d}", sps_id="SPS0001",
                                   mpps_status="IN PROGRESS", sps_status="STARTED", **extra)


async def test_event_is_published_with_qos1_to_its_event_and_channel_topic(
    broker: Mosquitto,
) -> None:
    sub = Subscriber(broker, "radbridge/#").start()
    pub = publisher(broker.url)
    try:
        assert await pub.send(events.payload(started_event())) == "PUBACK"
    finally:
        await pub.aclose()
    lines = await asyncio.to_thread(received, sub, 1)
    sub.stop()
    topic, body = lines[0].split(" ", 1)
    assert topic == "radbridge/procedure_started/modalities"
    doc = json.loads(body)
    assert doc["event"] == "procedure_started" and doc["accession_number"] == "ACC0001"


async def test_fixed_topic_publishes_any_payload_under_the_prefix(broker: Mosquitto) -> None:
    sub = Subscriber(broker, "site1/#").start()
    pub = publisher(broker.url, topic="hl7/results", topic_prefix="site1")
    try:
        await pub.send(b"MSH|^~\\&|A")
    finally:
        await pub.aclose()
    assert (await asyncio.to_thread(received, sub, 1)) == ["site1/hl7/results MSH|^~\\&|A"]
    sub.stop()


async def test_payload_without_topic_is_a_permanent_failure(broker: Mosquitto) -> None:
    pub = publisher(broker.url)
    with pytest.raises(PermanentDelivery):
        await pub.send(b"not an event")
    await pub.aclose()


async def test_broker_down_is_retryable_and_returns_quickly() -> None:
    pub = publisher(f"mqtt://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(RetryableDelivery):
        await pub.send(events.payload(started_event()))
    assert time.monotonic() - started < 3.5
    await pub.aclose()


async def test_username_and_password_are_used_and_a_wrong_one_is_retryable(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "auth", users={"radbridge": "s3cret"}).start()
    try:
        sub = Subscriber(broker, "radbridge/#", username="radbridge", password="s3cret").start()
        good = publisher(broker.url, username="radbridge", password="s3cret")
        bad = publisher(broker.url, username="radbridge", password="wrong")
        try:
            await good.send(events.payload(started_event()))
            with pytest.raises(RetryableDelivery):
                await bad.send(events.payload(started_event(2)))
        finally:
            await good.aclose()
            await bad.aclose()
        lines = await asyncio.to_thread(received, sub, 1)
        sub.stop()
        assert len(lines) == 1 and lines[0].startswith("radbridge/procedure_started/")
    finally:
        broker.stop()


def test_events_carry_no_phi_unless_allowed() -> None:
    event = started_event(patient_id="PAT10001", issuer_of_patient_id="GENHOSP")
    default = json.loads(events.payload(event, phi_fields=()))
    assert "patient_id" not in default and "issuer_of_patient_id" not in default
    assert "PAT10001" not in json.dumps(default)
    allowed = json.loads(events.payload(event, phi_fields=["patient_id"]))
    assert allowed["patient_id"] == "PAT10001" and "issuer_of_patient_id" not in allowed
    names = {f for m in events.EVENT_MODELS for f in m.model_fields}
    assert not {"patient_name", "birth_date", "patient_birth_date"} & names


def test_json_schema_lists_every_event_with_the_common_fields() -> None:
    schema = events.json_schema()
    defs = schema["$defs"]
    names = {d["properties"]["event"]["const"] for d in defs.values()
             if "event" in d.get("properties", {})}
    assert names == {m.name for m in events.EVENT_MODELS}
    for d in defs.values():
        if "event" in d.get("properties", {}):
            assert {"version", "time", "channel", "message_id", "accession_number",
                    "study_instance_uid", "sps_id"} <= set(d["properties"])


async def test_emit_does_nothing_when_events_are_off(store: SQLiteStore) -> None:
    events.configure(None)
    assert await store.write_tx(lambda c: events.emit(c, started_event())) is None


async def test_events_wait_durably_while_the_broker_is_down_then_are_published(
    store: SQLiteStore, tmp_path: Path, events_on: None,
) -> None:
    broker = Mosquitto(tmp_path / "broker")  # not started yet: the broker is down
    worker = DeliveryWorker(
        events.DEFAULT_QUEUE, publisher(broker.url), store, Metrics(),
        retry=RetryConfig(max_attempts=100, initial_delay_s=2.0, max_delay_s=2.0, jitter=0),
        ordering="destination")
    task = asyncio.create_task(worker.run())
    try:
        started = time.monotonic()
        for n in range(1, 6):  # what happened is committed at once, broker or not
            await store.write_tx(partial(events.emit, event=started_event(n)))
        assert time.monotonic() - started < 1.0
        worker.notify()

        async def attempted() -> bool:
            rows = await store.read_tx(lambda c: c.execute(
                "SELECT max(attempts), count(*) FROM deliveries WHERE status='pending'"
            ).fetchone())
            return bool(rows[0] and rows[0] >= 1 and rows[1] == 5)

        assert await eventually(attempted, 10)
        broker.start()  # back: within the 2 s retry delay, a subscriber is listening
        sub = await asyncio.to_thread(Subscriber(broker, "radbridge/#").start)
        lines = await asyncio.to_thread(received, sub, 5, 15)
        sub.stop()
        assert [json.loads(x.split(" ", 1)[1])["accession_number"] for x in lines] == [
            f"ACC{n:04d}" for n in range(1, 6)]  # all of them, in order

        async def all_sent() -> bool:
            return bool(await store.read_tx(lambda c: c.execute(
                "SELECT count(*) FROM deliveries WHERE status='sent'").fetchone()[0]) == 5)

        assert await eventually(all_sent, 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        broker.stop()


def test_config_refuses_other_url_schemes() -> None:
    with pytest.raises(ValueError, match="mqtt://"):
        MQTTPublisherConfig.model_validate(
            {"name": "m", "type": "mqtt_publisher", "url": "http://127.0.0.1:1883"})


def test_config_refuses_one_client_id_for_several_connections() -> None:
    base = {"name": "m", "type": "mqtt_publisher", "url": "mqtt://127.0.0.1:1883",
            "ordering": "none", "connections": 2}
    with pytest.raises(ValueError, match="needs client_id empty"):
        MQTTPublisherConfig.model_validate({**base, "client_id": "radbridge"})
    assert MQTTPublisherConfig.model_validate(base).connections == 2
