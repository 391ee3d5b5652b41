"""Configuration problems: one positioned diagnostic, and the error that carries them all.

Every stage of the configuration front end (YAML loading, ``${VAR}`` interpolation,
model validation) reports what is wrong as :class:`ConfigProblem` values rather than
raising on the first one, so ``radbridge validate`` can print every problem at once::

    channels.yaml:12:7: unknown field 'prot' (did you mean 'port'?)

Lines and columns are 1-based, as editors and ``grep -n`` count them.  Problems sort by
``(file, line, col)`` (then message), which is the order they should be printed in.
Errors print plainly; warnings print as ``file:line:col: warning: message``, the
convention compilers use and editors recognise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One thing wrong with a configuration file, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        """True for problems that must stop the engine from starting."""
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        if self.severity == "warning":
            return f"{where}: warning: {self.message}"
        return f"{where}: {self.message}"


def sort_problems(problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    """Return the problems de-duplicated and in printing order (file, line, col)."""
    return sorted(set(problems))


def format_problems(problems: Iterable[ConfigProblem]) -> str:
    """Render problems one per line, in printing order."""
    return "\n".join(str(problem) for problem in sort_problems(problems))


def has_errors(problems: Iterable[ConfigProblem]) -> bool:
    """True when at least one problem is an error rather than a warning."""
    return any(problem.is_error for problem in problems)


class ConfigError(Exception):
    """Raised when a configuration is invalid; ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = sort_problems(problems)
        super().__init__(format_problems(self.problems))

    def __str__(self) -> str:
        return format_problems(self.problems)
