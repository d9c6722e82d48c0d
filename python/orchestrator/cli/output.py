"""Everything the command prints: consoles, secret redaction, numbers, tables, JSON.

Every write to the terminal goes through :func:`clean` (no key the process knows
ever reaches it), tables fit the terminal's width without cutting a number, money is
written one way, and JSON never contains ``NaN``.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, TextIO, cast

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator._secrets import redact, register_secret
from orchestrator.config import ENV_PROVIDERS

#: Environment variables whose values are registered with the redactor, once each.
_registered_variables: set[str] = set()


class RedactingStream(io.TextIOBase):
    """A text stream that redacts every write (see :func:`clean`) before passing it
    to ``sys.stdout`` or ``sys.stderr``, looked up at each write."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _target(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    def write(self, text: str) -> int:
        self._target.write(clean(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()


console = Console(file=cast(TextIO, RedactingStream("stdout")), highlight=False)
err_console = Console(file=cast(TextIO, RedactingStream("stderr")), highlight=False)


def remember_secret_variable(name: str) -> None:
    """Redact the value of the environment variable ``name`` from every line printed,
    for as long as the process runs."""
    value = os.environ.get(name)
    if value and name not in _registered_variables:
        _registered_variables.add(name)
        register_secret(value)  # never released: the command ends with the process


def remember_provider_keys() -> None:
    """Register every provider's key variable found in the environment."""
    for variables, _ in ENV_PROVIDERS.values():
        for name in variables:
            remember_secret_variable(name)


def clean(text: str) -> str:
    """``text`` with every secret the process knows (see :mod:`orchestrator._secrets`)
    redacted."""
    return redact(text)


def print_error(message: str) -> None:
    """One ``error:`` line per line of ``message`` on stderr, markup-free."""
    for line in message.splitlines() or [""]:
        err_console.print(f"[bold red]error:[/bold red] {escape(line)}", soft_wrap=True)


def print_note(message: str, style: str = "dim") -> None:
    """A side note on stderr, markup-free."""
    err_console.print(f"[{style}]{escape(message)}[/{style}]", soft_wrap=True)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one redacted line of at most ``limit`` characters."""
    text = " ".join(clean(str(exc)).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def money(value: Optional[float]) -> str:
    """US dollars, written the same way everywhere: ``$0.000123``, ``$1.2346``, ``$1,234.57``."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def number(value: Optional[float], spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` when it is missing or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


#: The narrowest a wrapping text column (model names) gets before headers stack.
_MIN_TEXT_WIDTH = 10


def table(title: str, columns: Sequence[str], numeric: Iterable[str] = ()) -> Table:
    """A compact table that fits the terminal: text columns wrap, numeric columns
    (right-aligned) never wrap and are never cut."""
    numeric_columns = set(numeric)
    out = Table(
        title=escape(title),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for column in columns:
        if column in numeric_columns:
            out.add_column(column, justify="right", no_wrap=True, overflow="fold")
        else:
            out.add_column(column, overflow="fold")
    return out


def fit_numbers(rendered: Table, width: int) -> Table:
    """Give each numeric (no-wrap) column the width of its widest cell, so rich
    shrinks only the text columns; when even that is too wide for ``width``,
    headers go on several lines, one word each."""
    numeric = [c for c in rendered.columns if c.no_wrap]
    cells = {id(c): max((len(str(cell)) for cell in c.cells), default=0) for c in numeric}
    full = sum(max(cells[id(c)], len(str(c.header))) + 2 for c in numeric)
    text_columns = len(rendered.columns) - len(numeric)
    stack = full + text_columns * (_MIN_TEXT_WIDTH + 2) > width
    for column in numeric:
        header = str(column.header)
        words = header.split(" ") if stack else [header]
        column.header = "\n".join(words)
        column.min_width = max(cells[id(column)], *map(len, words))
    if stack:
        for column in rendered.columns:
            if not column.no_wrap:
                column.header = str(column.header).replace(" ", "\n")
    return rendered


def print_table(rendered: Table) -> None:
    """Print a table made by :func:`table`, numbers kept whole."""
    console.print(fit_numbers(rendered, console.width))


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (``null``, never ``NaN``)."""
    path.write_text(
        json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
