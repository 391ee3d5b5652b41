"""Channel registry: YAML ``type`` → (config model, class).

Built-in channels register on import of :mod:`channels`; third-party channels register
through the ``radbridge.channels`` entry-point group (each entry point is a module that
calls :func:`register_source` / :func:`register_destination` on import). ``engine/`` never
imports a concrete channel.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TypeVar

from engine.channel import Destination, Source

S = TypeVar("S", bound=type[Source])
D = TypeVar("D", bound=type[Destination])

_sources: dict[str, type[Source]] = {}
_destinations: dict[str, type[Destination]] = {}
_loaded = False


def register_source(cls: S) -> S:
    _sources[cls.type_name] = cls
    return cls


def register_destination(cls: D) -> D:
    _destinations[cls.type_name] = cls
    return cls


def load_plugins() -> None:
    """Import the built-in channels and every installed entry point, once."""
    global _loaded
    if _loaded:
        return
    importlib.import_module("channels")
    for ep in entry_points(group="radbridge.channels"):
        ep.load()
    _loaded = True


def sources() -> dict[str, type[Source]]:
    load_plugins()
    return dict(_sources)


def destinations() -> dict[str, type[Destination]]:
    load_plugins()
    return dict(_destinations)
