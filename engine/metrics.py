"""Prometheus metrics of one engine instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ACK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "radbridge_messages_received", "Inbound messages received", ["channel"], registry=r
        )
        self.acked = Counter(
            "radbridge_messages_acked", "Inbound messages answered AA/CA", ["channel"], registry=r
        )
        self.nacked = Counter(
            "radbridge_messages_nacked",
            "Inbound messages answered AE/AR/CE/CR",
            ["channel", "code"],
            registry=r,
        )
        self.filtered = Counter(
            "radbridge_messages_filtered", "Inbound messages filtered", ["channel"], registry=r
        )
        self.junk = Counter(
            "radbridge_mllp_junk_bytes", "Bytes skipped outside MLLP frames", ["channel"],
            registry=r,
        )
        self.connections = Gauge(
            "radbridge_connections_open", "Open inbound connections", ["channel"], registry=r
        )
        self.ack_latency = Histogram(
            "radbridge_ack_latency_seconds",
            "From the end of the inbound frame to the ACK handed to the socket",
            ["channel"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.sent = Counter(
            "radbridge_deliveries_sent", "Deliveries sent", ["destination"], registry=r
        )
        self.retried = Counter(
            "radbridge_deliveries_retried", "Delivery attempts to retry", ["destination"],
            registry=r,
        )
        self.dead = Counter(
            "radbridge_deliveries_dead", "Deliveries dead-lettered", ["destination"], registry=r
        )
        self.queue_depth = Gauge(
            "radbridge_queue_depth", "Pending deliveries", ["destination"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
