"""Cross-field checks that a schema cannot express: port clashes, duplicate names."""

from __future__ import annotations

from typing import Any

from engine.config.problems import ConfigProblem


def _mark(loaded: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    from engine.config.loader import mark_for

    return mark_for(loaded, loc)


def lint(model: Any, loaded: Any, filename: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
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
        seen: dict[str, int] = {}
        for i, dest in enumerate(ch.destinations):
            if dest.name in seen:
                line, col = _mark(loaded, ("channels", cname, "destinations", i, "name"))
                problems.append(ConfigProblem(
                    filename, line, col,
                    f"destination name {dest.name!r} is used twice in channel {cname}"))
            seen[dest.name] = i
    return problems
