"""``radbridge`` command line (also ``python -m engine``).

Commands: run, validate, schema, send, messages (list/show), replay, test, lookups,
worklist, and (in ``engine.reconcile_cli``) reconcile and mismatches. Every command takes
``-c/--config`` (default ``channels.yaml`` in the working directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import reconcile_cli
from engine.cli_common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    parse_since,
    with_config,
)
from engine.cli_common import load_cli_config as _load
from engine.cli_common import run_async as _run_async
from engine.cli_common import store_for as _store_for


# -- run / validate / schema ---------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import config_revision
    from engine.logging import configure_logging, get_logger
    from engine.runtime import Engine

    cfg, rc = _load(args.config)
    if cfg is None:
        print("radbridge: refusing to start with an invalid configuration", file=sys.stderr)
        return rc
    lc = cfg.engine.log
    configure_logging(lc.level, lc.format, phi=lc.phi)
    config_path = Path(args.config).resolve()
    base = config_path.parent

    async def reloader() -> tuple[Any, list[Any], str]:
        from engine.config import load_config

        def load() -> tuple[Any, list[Any], str]:
            new, problems = load_config(config_path)
            if new is not None and (base / "mappings").is_dir():
                from transforms.testing import run_tests

                report = run_tests([base / "mappings"])
                if not report.ok:
                    failed = [r.format() for r in report.results if not r.passed]
                    return None, [*problems, *report.problems, *failed,
                                  "mapping tests failed: " + report.format().splitlines()[-1]], ""
                broken = _rule_case_failures(base / "mappings")
                if broken:
                    return None, [*problems, *broken], ""
            return new, problems, config_revision(config_path)

        return await asyncio.to_thread(load)

    watch = [config_path, base / "mappings"] if cfg.engine.watch else []
    engine = Engine(cfg, revision=config_revision(config_path), base_dir=base,
                    reloader=reloader, watch_paths=watch)
    try:
        _run_async(engine.run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        get_logger().error("engine_failed", error=str(exc))
        print(f"radbridge: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    cfg, rc = _load(args.config)
    if cfg is not None:
        print(f"{args.config}: ok ({len(cfg.channels)} channels)")
    return rc


def cmd_schema(args: argparse.Namespace) -> int:
    if args.events:
        from engine import events

        print(json.dumps(events.json_schema(), indent=2))
        return EXIT_OK
    from engine.config.models import root_model

    print(json.dumps(root_model().model_json_schema(), indent=2))
    return EXIT_OK


# -- send ----------------------------------------------------------------------------
def split_messages(data: bytes) -> list[bytes]:
    """Messages of a file: one or many, segments on CR, LF or CRLF → CR-terminated."""
    lines = [ln for ln in re.split(rb"\r\n|\r|\n", data) if ln.strip()]
    messages: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


def cmd_send(args: argparse.Namespace) -> int:
    from channels.mllp.framing import Frame, MLLPDecoder, encode_frame

    data = Path(args.file).read_bytes()
    messages = [data] if args.raw else split_messages(data)
    worst = EXIT_OK
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as exc:
        print(f"radbridge send: cannot connect to {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return EXIT_FAIL
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for msg in messages:
            sock.sendall(encode_frame(msg))
            decoder = MLLPDecoder()
            ack: bytes | None = None
            deadline = time.monotonic() + args.timeout
            while ack is None:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    print(f"radbridge send: no ACK within {args.timeout}s", file=sys.stderr)
                    return EXIT_FAIL
                if not chunk:
                    print("radbridge send: connection closed before an ACK", file=sys.stderr)
                    return EXIT_FAIL
                for ev in decoder.feed(chunk):
                    if isinstance(ev, Frame):
                        ack = ev.payload
                        break
            text = ack.decode("utf-8", errors="replace")
            print(text.replace("\r", "\n").rstrip("\n"))
            code = re.search(r"(?:^|\r)MSA\|([A-Z]{2})", text)
            if code is None or code.group(1) not in ("AA", "CA"):
                worst = EXIT_FAIL
    return worst


# -- messages / replay ---------------------------------------------------------------
def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _filter_from(args: argparse.Namespace) -> Any:
    from engine.store.base import MessageFilter

    return MessageFilter(
        channel=args.channel, control_id=args.control_id, message_type=args.type,
        status=args.status, since=parse_since(args.since) if args.since else None,
        until=parse_since(args.until) if args.until else None,
        delivery_status=args.delivery_status, destination=args.destination, limit=args.limit,
    )


async def _messages(args: argparse.Namespace, cfg: Any) -> int:
    store = _store_for(cfg, args.config)
    await store.open()
    try:
        if args.action == "show":
            detail = await store.get_message(args.id)
            if detail is None:
                print(f"message {args.id} not found", file=sys.stderr)
                return EXIT_FAIL
            s = detail.summary
            print(f"message {s.id}  {_fmt_time(s.received_at)}  channel={s.channel}  "
                  f"peer={detail.peer}")
            print(f"  type={s.message_type} control_id={s.control_id} version={detail.version}"
                  f" charset={detail.charset} size={s.size} revision={detail.revision}")
            error = f" error: {s.error}" if s.error else ""
            print(f"  status={s.status} ack={s.ack_code}{error}")
            for w in detail.warnings:
                print(f"  warning: {w}")
            for d in detail.deliveries:
                line = (f"  delivery {d.id} → {d.destination}: {d.status}, attempts={d.attempts}")
                if d.response:
                    line += f", response={d.response}"
                if d.last_error:
                    line += f", last error: {d.last_error}"
                print(line)
            print("--- raw ---")
            print(detail.raw.decode(detail.charset or "latin-1", errors="replace")
                  .replace("\r", "\n").rstrip("\n"))
            return EXIT_OK
        rows = await store.search_messages(_filter_from(args))
        if args.json:
            print(json.dumps([r.__dict__ if hasattr(r, "__dict__") else
                              {k: getattr(r, k) for k in r.__slots__} for r in rows], indent=1))
            return EXIT_OK
        print(f"{'ID':>8}  {'RECEIVED (UTC)':19}  {'CHANNEL':14} {'TYPE':10} {'CONTROL ID':20}"
              f" {'STATUS':9} ACK  ERROR")
        for r in rows:
            print(f"{r.id:>8}  {_fmt_time(r.received_at)}  {r.channel[:14]:14} "
                  f"{r.message_type[:10]:10} {r.control_id[:20]:20} {r.status:9} "
                  f"{r.ack_code:4} {r.error[:60]}")
        print(f"({len(rows)} messages)", file=sys.stderr)
        return EXIT_OK
    finally:
        await store.aclose()


def cmd_messages(args: argparse.Namespace) -> int:
    return with_config(args, _messages)


async def _what_if(args: argparse.Namespace, cfg: Any) -> int:
    from engine.config import load_config
    from engine.whatif import build_pipelines, what_if

    new_path = Path(args.new_config)
    new_cfg, problems = load_config(new_path)
    for p in problems:
        print(p, file=sys.stderr)
    if new_cfg is None:
        print(f"radbridge replay: {new_path} is invalid; nothing compared", file=sys.stderr)
        return EXIT_FAIL
    old = build_pipelines(cfg, Path(args.config).resolve().parent)
    new = build_pipelines(new_cfg, new_path.resolve().parent)
    store = _store_for(cfg, args.config)
    await store.open()
    try:
        flt = _filter_from(args)
        if args.ids:
            flt.limit = 1
            reports = [await what_if(store, old, new, _one(flt, i)) for i in args.ids]
            report = reports[0]
            for r in reports[1:]:
                report.examined += r.examined
                report.changed += r.changed
                report.by_destination.update(r.by_destination)
        else:
            def progress(n: int, total: int) -> None:
                if total > 200 and (n % 200 == 0 or n == total):
                    print(f"\rwhat-if: {n}/{total}", end="" if n < total else "\n",
                          file=sys.stderr)

            report = await what_if(store, old, new, flt, progress)
    finally:
        await store.aclose()
    print(report.format())
    return EXIT_OK


def _one(flt: Any, message_id: int) -> Any:
    from dataclasses import replace

    return replace(flt, id=message_id, limit=1)


async def _replay(args: argparse.Namespace, cfg: Any) -> int:
    from engine.runtime import queue_name

    if args.dry_run:
        if not args.new_config:
            print("radbridge replay --dry-run needs --config NEW.yaml", file=sys.stderr)
            return EXIT_USAGE
        return await _what_if(args, cfg)
    if not args.target:
        print("radbridge replay: --to channel/destination is required", file=sys.stderr)
        return EXIT_USAGE

    queues = {queue_name(c, d.name) for c, ch in cfg.channels.items() for d in ch.destinations}
    if args.target not in queues:
        print(f"unknown destination {args.target!r}; known: {', '.join(sorted(queues))}",
              file=sys.stderr)
        return EXIT_USAGE
    store = _store_for(cfg, args.config)
    await store.open()
    try:
        if args.ids:
            ids = list(args.ids)
        else:
            flt = _filter_from(args)
            flt.limit = args.limit
            ids = [r.id for r in reversed(await store.search_messages(flt))]
        total, done = len(ids), 0
        for start in range(0, total, 500):
            chunk = ids[start:start + 500]
            done += await store.requeue(chunk, args.target)
            if total > 500:
                print(f"\rreplay: {start + len(chunk)}/{total}", end="", file=sys.stderr)
        if total > 500:
            print(file=sys.stderr)
        print(f"re-queued {done} of {total} messages to {args.target}")
        return EXIT_OK if done == total else EXIT_FAIL
    finally:
        await store.aclose()


def cmd_replay(args: argparse.Namespace) -> int:
    return with_config(args, _replay)


def _rule_case_failures(mappings: Path) -> list[str]:
    """The reconciliation rule cases under ``mappings`` that fail (a reload is refused)."""
    import io

    from transforms.reconcile.testcases import find_case_files, run_case_files

    out = io.StringIO()
    _, failed = run_case_files(find_case_files([mappings]), out)
    if not failed:
        return []
    return [*out.getvalue().splitlines(), f"reconciliation rule cases failed: {failed}"]


def cmd_test(args: argparse.Namespace) -> int:
    from transforms.testing import main as test_main

    base = Path(args.config).resolve().parent
    from transforms.reconcile.testcases import find_case_files, run_case_files

    paths = [Path(a) for a in args.paths] or [base / "mappings"]
    argv = [str(p) for p in paths if not p.name.endswith(".cases.yaml")]
    if args.verbose:
        argv.append("-v")
    if args.keyword:
        argv += ["-k", args.keyword]
    rc = test_main(argv) if any(not p.name.endswith(".cases.yaml") for p in paths) else 0
    files = find_case_files(paths)
    if not files:
        return rc
    passed, failed = run_case_files(files, sys.stdout, verbose=args.verbose,
                                    keyword=args.keyword or "")
    print(f"{passed} reconciliation rule cases passed, {failed} failed in {len(files)} file(s)")
    return rc if failed == 0 else EXIT_FAIL


async def _lookup_misses(args: argparse.Namespace, cfg: Any) -> int:
    from engine.lookups import load_misses
    from transforms.misses import format_misses

    store = _store_for(cfg, args.config)
    await store.open()
    try:
        misses = await store.read_tx(load_misses)
    finally:
        await store.aclose()
    print(format_misses(misses) if misses else "no lookup misses recorded")
    return EXIT_OK


def cmd_lookup_misses(args: argparse.Namespace) -> int:
    return with_config(args, _lookup_misses)


async def _worklist(args: argparse.Namespace, cfg: Any) -> int:
    from engine.worklist_cli import list_entries, show_entry

    store = _store_for(cfg, args.config)
    await store.open()
    try:
        if args.action == "show":
            found = await store.read_tx(lambda c: show_entry(c, args.key))
            if found is None:
                print(f"no worklist entry {args.key!r}", file=sys.stderr)
                return EXIT_FAIL
            item, msgs = found
            print(json.dumps(item, indent=1, ensure_ascii=False))
            print("--- HL7 messages ---")
            for mid, ts, mtype, cid, status in msgs:
                print(f"message {mid}  {_fmt_time(ts)}  {mtype}  control_id={cid}  {status}")
            return EXIT_OK
        rows = await store.read_tx(lambda c: list_entries(c, args))
    finally:
        await store.aclose()
    print(f"{'ID':>6}  {'DATE':8} {'TIME':6} {'MOD':4} {'STATION':16} {'ACCESSION':16} "
          f"{'SPS ID':16} STATUS")
    for rid, d, t, mod, aet, acc, sps, status, _rp in rows:
        print(f"{rid:>6}  {d:8} {t[:6]:6} {mod:4} {aet[:16]:16} {acc:16} {sps:16} {status}")
    print(f"({len(rows)} entries)", file=sys.stderr)
    return EXIT_OK


def cmd_worklist(args: argparse.Namespace) -> int:
    return with_config(args, _worklist)




# -- argument parsing ----------------------------------------------------------------
def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel")
    p.add_argument("--control-id")
    p.add_argument("--type", help="message type, e.g. ORM^O01")
    p.add_argument("--status", help="processed, rejected, filtered, error")
    p.add_argument("--since", help="30m, 24h, 7d or an ISO date/time")
    p.add_argument("--until")
    p.add_argument("--delivery-status", help="pending, sent, dead")
    p.add_argument("--destination", help="channel/destination")
    p.add_argument("--limit", type=int, default=100)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radbridge", description=__doc__)
    parser.add_argument("-c", "--config", default="channels.yaml")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the engine").set_defaults(func=cmd_run)
    sub.add_parser("validate", help="check the configuration").set_defaults(func=cmd_validate)
    p = sub.add_parser("schema", help="print the JSON Schema of channels.yaml")
    p.add_argument("--events", action="store_true", help="the MQTT events' JSON Schema instead")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("send", help="send an HL7 file over MLLP and print the ACK")
    p.add_argument("file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2575)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--raw", action="store_true", help="send the file bytes as one frame")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("messages", help="search stored messages, or show one")
    msub = p.add_subparsers(dest="action")
    ps = msub.add_parser("show")
    ps.add_argument("id", type=int)
    pl = msub.add_parser("list")
    for q in (p, pl):
        _add_filters(q)
        q.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_messages, action="list")
    ps.set_defaults(func=cmd_messages, action="show")
    pl.set_defaults(func=cmd_messages, action="list")

    p = sub.add_parser("replay", help="re-queue stored messages to a destination")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--to", dest="target", help="channel/destination")
    p.add_argument("--dry-run", action="store_true",
                   help="what-if: compare outputs under --config NEW.yaml; nothing is sent")
    p.add_argument("--config", dest="new_config", help="with --dry-run: the new configuration")
    _add_filters(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("test", help="run the mapping tests (mappings/**/*.test.yaml)")
    p.add_argument("paths", nargs="*")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-k", "--keyword", default="")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("worklist", help="list worklist entries, or show one")
    wsub = p.add_subparsers(dest="action")
    ws = wsub.add_parser("show")
    ws.add_argument("key", help="entry id or accession number")
    wl = wsub.add_parser("list")
    for q in (p, wl):
        q.add_argument("--date", help="YYYYMMDD, YYYY-MM-DD or today")
        q.add_argument("--modality")
        q.add_argument("--station", help="scheduled station AE title")
        q.add_argument("--status", help="SCHEDULED, STARTED, COMPLETED, CANCELED …")
        q.add_argument("--accession")
        q.add_argument("--all", action="store_true", help="include finished and cancelled")
        q.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=cmd_worklist, action="list")
    ws.set_defaults(func=cmd_worklist, action="show")
    wl.set_defaults(func=cmd_worklist, action="list")

    reconcile_cli.add_parsers(sub)

    p = sub.add_parser("lookups", help="lookup tables: misses seen by the engine")
    lsub = p.add_subparsers(dest="action", required=True)
    lsub.add_parser("misses").set_defaults(func=cmd_lookup_misses)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
