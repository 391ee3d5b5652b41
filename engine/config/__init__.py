"""Configuration: load ``channels.yaml``, interpolate ``${VAR}``, validate, lint.

``load_config`` returns the validated model and every problem found, syntax, environment,
schema and cross-field (lint) problems together, each as ``file:line:col: message``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config.lint import lint
from engine.config.models import root_model
from engine.config.problems import ConfigError, ConfigProblem

__all__ = ["ConfigError", "ConfigProblem", "config_revision", "load_config"]


def config_revision(path: str | Path) -> str:
    """A short content hash naming this configuration revision: channels.yaml and every
    file under the ``mappings/`` folder beside it (mappings, tables, mapping tests)."""
    path = Path(path)
    h = hashlib.sha256(path.read_bytes())
    mappings = path.resolve().parent / "mappings"
    if mappings.is_dir():
        for f in sorted(p for p in mappings.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(mappings)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Any, list[ConfigProblem]]:
    from engine.config.loader import load_file
    from engine.config.validate import load_and_validate

    env = os.environ if env is None else env
    model, problems = load_and_validate(str(path), root_model(), env=env)
    if model is not None:
        loaded = load_file(str(path))
        problems.extend(lint(model, loaded, str(path)))
    problems.sort(key=lambda p: (p.file, p.line, p.col))
    errors = [p for p in problems if p.severity == "error"]
    return (model if not errors else None), problems
