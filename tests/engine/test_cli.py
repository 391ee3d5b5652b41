"""The CLI as an analyst uses it: validate, schema, send."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.client import orm
from tests.support.peers import ROOT, MLLPSink, ack_for


def radbridge(*args: str, cwd: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("RADBRIDGE_")}
    e["PYTHONPATH"] = str(ROOT)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=60, check=False)


def test_validate_prints_every_problem_with_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text(
        "channels:\n"
        "  ris:\n"
        "    source:\n"
        "      type: mllp_listner\n"
        "      port: 2575\n"
        "    destinations:\n"
        "      - name: ehr\n"
        "        type: mllp_sender\n"
        "        host: ${NOT_SET_ANYWHERE}\n"
        "        prot: 2576\n"
    )
    out = radbridge("validate", cwd=tmp_path)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert any(ln.startswith("channels.yaml:4:13: ") and "did you mean 'mllp_listener'" in ln
               for ln in lines), lines
    assert any(ln.startswith("channels.yaml:9:15: environment variable NOT_SET_ANYWHERE")
               for ln in lines), lines
    assert any(ln.startswith("channels.yaml:10:9: unknown field 'prot'") for ln in lines), lines


def test_run_refuses_an_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text("channels:\n  x:\n    source: {type: nope}\n")
    out = radbridge("run", cwd=tmp_path)
    assert out.returncode == 1
    assert "refusing to start" in out.stderr


def test_validate_refuses_several_connections_with_strict_fifo(tmp_path: Path) -> None:
    dest = ("      - name: ehr\n"
            "        type: mllp_sender\n"
            "        host: 127.0.0.1\n"
            "        port: 2576\n"
            "        connections: 3\n")
    head = "channels:\n  ris:\n    source: {type: mllp_listener, port: 2575}\n    destinations:\n"
    (tmp_path / "channels.yaml").write_text(head + dest)
    out = radbridge("validate", cwd=tmp_path)
    assert out.returncode == 1
    assert "channels.yaml:5:" in out.stderr
    assert "connections > 1 needs ordering: key or none" in out.stderr
    (tmp_path / "channels.yaml").write_text(head + dest + "        ordering: key\n")
    assert radbridge("validate", cwd=tmp_path).returncode == 0


def test_validate_reports_port_clash(tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text(
        "channels:\n"
        "  a: {source: {type: mllp_listener, port: 2575}}\n"
        "  b:\n"
        "    source: {type: mllp_listener, port: 2575}\n"
    )
    out = radbridge("validate", cwd=tmp_path)
    assert out.returncode == 1
    assert "channels.yaml:4:" in out.stderr
    assert "port 2575 is already used by channel a" in out.stderr


def test_shipped_channels_yaml_validates() -> None:
    out = radbridge("validate", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_schema_is_json_schema_with_channel_types() -> None:
    out = radbridge("schema", cwd=ROOT)
    schema = json.loads(out.stdout)
    text = json.dumps(schema)
    assert "mllp_listener" in text and "mllp_sender" in text


def test_send_prints_the_ack_and_exits_by_its_code(tmp_path: Path) -> None:
    codes = iter(["AA", "AE"])
    sink = MLLPSink(behaviour=lambda m: ack_for(m, next(codes)))
    try:
        f = tmp_path / "two.hl7"
        f.write_bytes((orm(1) + orm(2)).replace(b"\r", b"\n"))
        out = radbridge("send", str(f), "--port", str(sink.port), cwd=tmp_path)
        assert "MSA|AA|MSG000001" in out.stdout and "MSA|AE|MSG000002" in out.stdout
        assert out.returncode == 1
        assert sink.control_ids() == ["MSG000001", "MSG000002"]
    finally:
        sink.close()


def test_schema_events_lists_every_event() -> None:
    out = radbridge("schema", "--events", cwd=ROOT)
    text = out.stdout
    for name in ("procedure_completed", "worklist_entry_cancelled", "delivery_dead_lettered"):
        assert name in text
    assert json.loads(text) == json.loads((ROOT / "docs" / "events.schema.json").read_text()), (
        "docs/events.schema.json is stale: regenerate with `radbridge schema --events`")
