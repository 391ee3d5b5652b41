"""Cross-field checks that a schema cannot express: port clashes, duplicate names, and the
mappings a channel refers to (which must exist and lint clean)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.problems import ConfigProblem


def _mark(loaded: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    from engine.config.loader import mark_for

    return mark_for(loaded, loc)


def _lint_mapping(
    base: Path, rel: str, loc: tuple[Any, ...], loaded: Any, filename: str,
    destinations: list[str],
) -> list[ConfigProblem]:
    from transforms.lint import lint_mapping

    path = base / rel
    if not path.is_file():
        line, col = _mark(loaded, loc)
        return [ConfigProblem(filename, line, col, f"mapping file {rel!r} does not exist")]
    return lint_mapping(path, None, destinations=destinations)


def lint(model: Any, loaded: Any, filename: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    base = Path(filename).resolve().parent
    ports: dict[tuple[str, int], str] = {}
    http = model.engine.http
    if http.enabled and http.port:
        ports[("*", http.port)] = "engine.http"
    for cname, ch in model.channels.items():
        port = getattr(ch.source, "port", None)
        if isinstance(port, int) and port:
            host = getattr(ch.source, "host", "*")
            for (other_host, other_port), owner in ports.items():
                same_host = "*" in (host, other_host) or host == other_host or \
                    "0.0.0.0" in (host, other_host)
                if other_port == port and same_host:
                    line, col = _mark(loaded, ("channels", cname, "source", "port"))
                    problems.append(ConfigProblem(
                        filename, line, col, f"port {port} is already used by {owner}"))
            ports[(host, port)] = f"channel {cname}"
        check_files = getattr(ch.source, "check_files", None)
        if callable(check_files):  # e.g. the reconciler's rules file
            for fname, problem in check_files(base):
                line, col = _mark(loaded, ("channels", cname, "source", fname))
                problems.append(ConfigProblem(filename, line, col, problem))
        names = [d.name for d in ch.destinations]
        if ch.mapping:
            problems += _lint_mapping(base, ch.mapping, ("channels", cname, "mapping"), loaded,
                                      filename, names)
        seen: dict[str, int] = {}
        for i, dest in enumerate(ch.destinations):
            for fname in type(dest).model_fields:  # mapping, order_mapping, patient_mapping…
                rel = getattr(dest, fname)
                if fname.endswith("mapping") and isinstance(rel, str) and rel:
                    problems += _lint_mapping(
                        base, rel, ("channels", cname, "destinations", i, fname),
                        loaded, filename, names)
            if dest.name in seen:
                line, col = _mark(loaded, ("channels", cname, "destinations", i, "name"))
                problems.append(ConfigProblem(
                    filename, line, col,
                    f"destination name {dest.name!r} is used twice in channel {cname}"))
            seen[dest.name] = i
    return problems
