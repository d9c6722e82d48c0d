"""The configuration's error: every problem of a file, one line each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

from orchestrator.errors import OrchestratorError


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: where (file, line, dotted key) and what, in our words."""

    message: str
    path: Optional[str] = None
    line: Optional[int] = None
    key: Optional[str] = None

    def __str__(self) -> str:
        """``file:line: key: problem`` (the parts that are known)."""
        where = self.path or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class ConfigError(OrchestratorError):
    """A configuration file is missing, unreadable, malformed or invalid.

    ``problems`` holds every problem found, each a line ``file:line: key:
    problem``; ``str(error)`` is those lines joined by newlines (one line when
    there is one problem). ``path``, ``line``, ``key`` and ``problem`` describe
    the first problem.
    """

    def __init__(
        self,
        problem: Union[str, list[ConfigProblem]],
        *,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        key: Optional[str] = None,
        line: Optional[int] = None,
    ) -> None:
        if isinstance(problem, str):
            shown = None if path is None else str(path)
            items = [ConfigProblem(problem, shown, line, key)]
        else:
            items = list(problem)
        if not items:
            raise ValueError("a ConfigError needs at least one problem")
        self.items = items
        self.problems = [str(item) for item in items]
        first = items[0]
        self.path, self.line, self.key, self.problem = (
            first.path,
            first.line,
            first.key,
            first.message,
        )
        super().__init__("\n".join(self.problems))
