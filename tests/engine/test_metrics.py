"""Hot-path metrics: counted in plain objects, exposed like prometheus_client's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from engine.metrics import ACK_BUCKETS, FastCounter, FastHistogram, Metrics


def _samples(text: bytes) -> list[str]:
    return sorted(line for line in text.decode().splitlines()
                  if line and not line.startswith("#") and "_created" not in line)


def test_fast_metrics_expose_what_prometheus_client_would() -> None:
    fast, ref = CollectorRegistry(), CollectorRegistry()
    fc = FastCounter("x_messages", "doc", ["channel", "code"], fast)
    rc = Counter("x_messages", "doc", ["channel", "code"], registry=ref)
    fh = FastHistogram("x_latency_seconds", "doc", ["channel"], ACK_BUCKETS, fast)
    rh = Histogram("x_latency_seconds", "doc", ["channel"], buckets=ACK_BUCKETS, registry=ref)
    for i, v in enumerate([0.0001, 0.0005, 0.0007, 0.01, 0.3, 2.5, 9.0, 0.002]):
        channel = "a" if i % 3 else "b"
        fc.labels(channel, "AA").inc()
        fc.labels(channel, "AR").value += 2
        rc.labels(channel, "AA").inc()
        rc.labels(channel, "AR").inc(2)
        fh.labels(channel).observe(v)
        rh.labels(channel).observe(v)
    assert _samples(generate_latest(fast)) == _samples(generate_latest(ref))
    assert any(s.startswith('x_latency_seconds_bucket{channel="a",le="0.0005"} 1.0')
               for s in _samples(generate_latest(fast)))


def test_engine_metrics_render_the_hot_path_counts() -> None:
    m = Metrics()
    m.received.labels("ris").value += 3
    m.acked.labels("ris").inc()
    m.nacked.labels("ris", "AR").inc()
    m.ack_latency.labels("ris").observe(0.004)
    text = m.render().decode()
    assert 'radbridge_messages_received_total{channel="ris"} 3.0' in text
    assert 'radbridge_messages_acked_total{channel="ris"} 1.0' in text
    assert 'radbridge_messages_nacked_total{channel="ris",code="AR"} 1.0' in text
    assert 'radbridge_ack_latency_seconds_bucket{channel="ris",le="0.005"} 1.0' in text
    assert 'radbridge_ack_latency_seconds_bucket{channel="ris",le="0.002"} 0.0' in text
    assert 'radbridge_ack_latency_seconds_count{channel="ris"} 1.0' in text
