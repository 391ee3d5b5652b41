"""The ``mqtt_publisher`` destination: publishes each payload to an MQTT broker (aiomqtt).

Usable in any channel, and as the destination of the engine's events queue
(:mod:`engine.events`). The topic is ``<topic_prefix>/<topic>`` when ``topic`` is set;
otherwise the payload must be an engine event (JSON with ``event`` and ``channel``) and
goes to ``<topic_prefix>/<event>/<channel>``, e.g. ``radbridge/procedure_completed/modalities``.

One connection is kept and reused. Each publish waits for the broker's acknowledgement
(QoS 1: PUBACK) within ``publish_timeout_s``; a broker that is down, refuses the login or
drops the connection raises :class:`RetryableDelivery`, so the engine's queue keeps the
payload and retries with backoff (at-least-once). A payload that can never be published
(no topic) raises :class:`PermanentDelivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Literal, Self
from urllib.parse import urlsplit

import aiomqtt
from pydantic import Field, field_validator, model_validator

from engine.channel import Destination
from engine.config.models import DestinationCommon
from engine.errors import PermanentDelivery, RetryableDelivery
from engine.events import topic as event_topic
from engine.logging import get_logger
from engine.registry import register_destination

log = get_logger("radbridge.mqtt")


class MQTTPublisherConfig(DestinationCommon):
    """Publishes to an MQTT broker (MQTT 3.1.1), QoS 1 by default."""

    type: Literal["mqtt_publisher"]
    url: str
    """``mqtt://host:port`` (default port 1883) or ``mqtts://host:port`` (TLS, 8883)."""
    username: str = ""
    password: str = ""
    ca_file: str = ""
    """CAs that sign the broker's certificate (mqtts; empty: the system's)."""
    cert_file: str = ""
    """Client certificate for mutual TLS."""
    key_file: str = ""
    topic_prefix: str = "radbridge"
    topic: str = ""
    """Fixed topic under the prefix; empty: ``<event>/<channel>`` from an event payload."""
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    client_id: str = ""
    """MQTT client identifier (empty: one is generated)."""
    keepalive_s: int = Field(30, ge=5)
    connect_timeout_s: float = Field(5.0, gt=0)
    publish_timeout_s: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        return value

    @model_validator(mode="after")
    def _one_client_id_per_connection(self) -> Self:
        if self.connections > 1 and self.client_id:
            raise ValueError("connections > 1 needs client_id empty: each connection is a "
                             "client of its own, and a broker drops a client whose id "
                             "another one takes")
        return self


@register_destination
class MQTTPublisher(Destination):
    type_name = "mqtt_publisher"
    config_model = MQTTPublisherConfig
    config: MQTTPublisherConfig

    def __init__(self, name: str, config: MQTTPublisherConfig) -> None:
        super().__init__(name, config)
        self._client: aiomqtt.Client | None = None

    def _topic(self, payload: bytes) -> str:
        cfg = self.config
        if cfg.topic:
            return f"{cfg.topic_prefix.rstrip('/')}/{cfg.topic.lstrip('/')}"
        try:
            doc = json.loads(payload)
            return event_topic(cfg.topic_prefix, str(doc["event"]), str(doc["channel"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentDelivery(
                "no topic: set `topic:` or publish engine events (JSON with event, channel)"
            ) from exc

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.config
        parts = urlsplit(cfg.url)
        tls = parts.scheme == "mqtts"
        tls_context = None
        if tls:
            tls_context = ssl.create_default_context(cafile=cfg.ca_file or None)
            if cfg.cert_file:
                tls_context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883),
            username=cfg.username or None, password=cfg.password or None,
            identifier=cfg.client_id or None, keepalive=cfg.keepalive_s,
            timeout=cfg.connect_timeout_s, tls_context=tls_context,
        )

    async def _connected(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = self._new_client()
        try:
            async with asyncio.timeout(self.config.connect_timeout_s + 1):
                await client.__aenter__()
        except (aiomqtt.MqttError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise RetryableDelivery(f"MQTT broker unavailable: {exc or type(exc).__name__}"
                                    ) from exc
        self._client = client
        log.info("connection_opened", destination=self.name, peer=self._peer())
        return client

    def _peer(self) -> str:
        parts = urlsplit(self.config.url)
        return f"{parts.hostname}:{parts.port or ''}"

    async def send(self, payload: bytes) -> str:
        topic = self._topic(payload)
        client = await self._connected()
        cfg = self.config
        try:
            await client.publish(topic, payload, qos=cfg.qos, retain=cfg.retain,
                                 timeout=cfg.publish_timeout_s)
        except (aiomqtt.MqttError, OSError) as exc:
            await self._drop()
            raise RetryableDelivery(f"MQTT publish failed: {exc or type(exc).__name__}"
                                    ) from exc
        return "PUBACK" if cfg.qos == 1 else ("PUBCOMP" if cfg.qos == 2 else "sent")

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await client.__aexit__(None, None, None)

    async def aclose(self) -> None:
        await self._drop()
