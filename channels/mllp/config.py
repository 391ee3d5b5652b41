"""Configuration models of the MLLP listener and sender."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.config.models import DestinationCommon, SourceCommon, Strict


class TLSConfig(Strict):
    """TLS for MLLP; with ``ca_file`` and ``require_client_cert`` it is mutual TLS."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    """Listener: CAs that sign client certificates. Sender: CAs that sign the server's."""
    require_client_cert: bool = False
    server_hostname: str = ""
    """Sender: name to verify in the server certificate (default: host)."""
    verify: bool = True
    """Sender: verify the server certificate."""


class MLLPListenerConfig(SourceCommon):
    """Receives HL7 v2 over MLLP (VT … FS CR), stores each message, then ACKs it."""

    type: Literal["mllp_listener"]
    host: str = "0.0.0.0"
    port: int = Field(ge=0, le=65535)
    max_connections: int = Field(64, ge=1)
    """Beyond this, a new connection from a peer that already has an idle one replaces it;
    otherwise it is refused."""
    allowed_peers: list[str] = []
    """IP addresses or networks (CIDR) allowed to connect; empty: any."""
    idle_timeout_s: float = Field(600.0, ge=0)
    """Close a connection with no traffic for this long (0: never). Catches half-open peers."""
    frame_timeout_s: float = Field(30.0, gt=0)
    """A frame that has started must end within this long, else the connection is reset."""
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    require_end_cr: bool = True
    """False: accept FS without the trailing CR as the end of a frame."""
    tcp_keepalive: bool = True
    tls: TLSConfig | None = None


class MLLPSenderConfig(DestinationCommon):
    """Sends HL7 v2 over MLLP on a kept connection and checks every ACK."""

    type: Literal["mllp_sender"]
    host: str
    port: int = Field(ge=1, le=65535)
    connect_timeout_s: float = Field(5.0, gt=0)
    ack_timeout_s: float = Field(30.0, gt=0)
    """No ACK within this long: the socket is closed (a late ACK can never match the next
    message) and the message is retried."""
    validate_control_id: bool = True
    """Check that MSA-2 of the ACK echoes MSH-10 of the message."""
    on_error: Literal["retry", "fail"] = "retry"
    """What an AE/CE answer means."""
    on_reject: Literal["retry", "fail"] = "fail"
    """What an AR/CR answer means."""
    keep_connection: bool = True
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    tls: TLSConfig | None = None
