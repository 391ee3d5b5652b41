"""The shape of ``channels.yaml``: engine settings, channels, their source and destinations.

Channel-type models live beside their channel (``channels/mllp/config.py`` …) and are
joined here into discriminated unions on ``type``, so the models are the single source of
field names, defaults, docs and the JSON schema that ``radbridge schema`` prints.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Self, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from engine import registry


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HTTPConfig(Strict):
    """Admin API: /health, /metrics, POST /reload (and the console pages when enabled)."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    enabled: bool = True
    console: bool = False
    """GET /mismatches: the open reconciliation mismatches as one HTML page. It shows
    patient-identifying values, so it is off by default; keep ``host`` on 127.0.0.1 (or
    behind an authenticating proxy) when it is on."""


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """auto: JSON when stderr is not a terminal."""
    phi: bool = False
    """Let identifying values into log lines. Never in production."""


class RetentionConfig(Strict):
    """Pruning of old messages; space is reclaimed (incremental vacuum), not just marked free."""

    max_age_days: float = Field(30.0, gt=0)
    """Messages older than this are deleted once every delivery of theirs is final
    (sent or dead). Pending deliveries are never pruned."""
    interval_s: float = Field(3600.0, gt=0)
    """How often the pruner runs."""
    batch: int = Field(5000, ge=100)


class RetryConfig(Strict):
    """Capped exponential backoff; a delivery is dead-lettered after ``max_attempts``."""

    max_attempts: int = Field(10, ge=1)
    initial_delay_s: float = Field(1.0, gt=0)
    max_delay_s: float = Field(300.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.1, ge=0, le=1)


class EventsConfig(Strict):
    """Engine events (order_received, procedure_completed…) published to MQTT.

    Events are queued durably in the ``_events/mqtt`` queue in the same transaction as what
    happened, so a broker that is down delays them and never blocks HL7 traffic."""

    mqtt_url: str = ""
    """``mqtt://host:port`` or ``mqtts://host:port``; empty: events off."""
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    topic_prefix: str = "radbridge"
    """Events go to ``<topic_prefix>/<event>/<channel>``."""
    client_id: str = "radbridge"
    phi_fields: list[Literal["patient_id", "issuer_of_patient_id"]] = []
    """PHI allowed in event payloads (default none: no names, birth dates or patient IDs)."""
    retry: RetryConfig = RetryConfig(max_attempts=100000, initial_delay_s=1.0,
                                     max_delay_s=60.0)


class EngineConfig(Strict):
    data_dir: str = "./data"
    """Data directory: the SQLite store lives here."""
    store: str = ""
    """Empty for SQLite in the data directory, or a postgresql:// URL."""
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    """FULL: a committed message survives power loss. NORMAL survives a process crash only."""
    http: HTTPConfig = HTTPConfig()
    log: LogConfig = LogConfig()
    shutdown_grace_s: float = Field(10.0, ge=0)
    watch: bool = True
    """Reload when channels.yaml or anything under mappings/ changes (also SIGHUP, POST /reload)."""
    retention: RetentionConfig = RetentionConfig()
    events: EventsConfig = EventsConfig()




class DestinationCommon(Strict):
    """Fields every destination has (each destination model inherits them)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    retry: RetryConfig = RetryConfig()
    ordering: Literal["destination", "key", "none"] = "destination"
    """destination: strict FIFO; key: FIFO per ``order_key`` value; none: no ordering."""
    order_key: str = "PID-3.1"
    """HL7 path whose value groups messages when ``ordering: key``."""
    message_types: list[str] = []
    """Only these MSH-9 types (e.g. ORM^O01, ADT^*) go to this destination; empty: all."""
    mapping: str | None = None
    """A mapping file (relative to channels.yaml) making this destination's payload."""
    params: dict[str, Any] = {}
    """Values for the mapping's declared ``params``."""
    charset: str | None = None
    """HL7 table 0211 charset of the outbound payload (default: the mapping output's MSH-18)."""
    send_interval_s: float = Field(0.0, ge=0.0, le=3600.0)
    """Pacing: at least this long between the starts of two sends (retries included) to
    this destination, for a receiver that cannot take a burst, e.g. a backlog after an
    outage. 0: as fast as the receiver answers."""
    connections: int = Field(1, ge=1, le=16)
    """Connections to the receiver, each with one message in flight (an MLLP sender waits
    for each ACK); the messages of one ``order_key`` value always take the same one. More
    than one needs ``ordering: key`` or ``none``."""

    @model_validator(mode="after")
    def _connections_need_key_or_no_ordering(self) -> Self:
        if self.connections > 1 and self.ordering == "destination":
            raise ValueError("connections > 1 needs ordering: key or none (ordering: "
                             "destination sends one message at a time)")
        return self


class SourceCommon(Strict):
    """Fields every source has."""


class ChannelCommon(Strict):
    enabled: bool = True
    description: str = ""
    accept_message_types: list[str] = []
    """MSH-9 types this channel accepts (``ADT^*`` allowed); others are answered AR. Empty: all."""
    charset_fallback: str = "utf-8"
    """Codec when MSH-18 is empty: 'utf-8' falls back to latin-1 for invalid bytes."""
    validation: Literal["off", "warn", "strict"] = "off"
    """HL7 structure validation by hl7apy: warn records problems, strict answers AE."""
    filtered_ack: Literal["AA", "AR"] = "AA"
    """What a message filtered by the channel's mapping is answered with."""
    mapping: str | None = None
    """A mapping file (relative to channels.yaml) run first: it may filter, reject or route
    to named destinations, and an HL7 output replaces the message for every destination."""
    params: dict[str, Any] = {}


def _union(models: list[type[BaseModel]]) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007


@lru_cache(maxsize=1)
def root_model() -> type[BaseModel]:
    """Build the root model from the registered channel types."""
    src_models = [cls.config_model for cls in registry.sources().values()]
    dst_models = [cls.config_model for cls in registry.destinations().values()]
    dest_list: Any = list[_union(dst_models)]  # type: ignore[misc]
    channel = create_model(
        "ChannelConfig",
        __base__=ChannelCommon,
        source=(_union(src_models), ...),
        destinations=(dest_list, []),
    )
    channels: Any = dict[str, channel]
    return create_model(
        "RadBridgeConfig",
        __base__=Strict,
        engine=(EngineConfig, EngineConfig()),
        channels=(channels, ...),
    )
