"""Reading a configuration file safely: only a regular file of bounded size,
nesting bounded before the TOML parser sees it, and the line of every key."""

from __future__ import annotations

import codecs
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Optional, Union

from orchestrator.config.errors import ConfigError

#: A configuration file larger than this is refused before it is read.
MAX_CONFIG_BYTES = 1024 * 1024
#: Arrays and inline tables nested deeper than this are refused.
MAX_NESTING = 32

Loc = tuple[Union[str, int], ...]


def read_config_text(file: Path) -> str:
    """The text of ``file`` (without a UTF-8 byte-order mark), refusing
    directories, FIFOs, devices and files over :data:`MAX_CONFIG_BYTES`
    before reading them."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(
            "file not found; pass --config with an existing file (see examples/orchestrator.toml)",
            path=file,
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", path=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot open the file: {exc.strerror}", path=file) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("is a directory, not a configuration file", path=file)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
            raise ConfigError(f"is {kind}, not a regular file; refusing to read it", path=file)
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"is {info.st_size} bytes; a configuration file is at most "
                f"{MAX_CONFIG_BYTES} bytes",
                path=file,
            )
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", path=file) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES} bytes", path=file)
    try:
        # Editors on Windows start UTF-8 files with a byte-order mark; TOML has none.
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("is not UTF-8 text", path=file, line=line) from None


def check_nesting(text: str, path: Optional[Path]) -> None:
    """Refuse arrays or inline tables nested deeper than :data:`MAX_NESTING`
    (the TOML parser recurses once per level), naming the line."""
    depth = 0
    line = 1
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else c
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if (c == '"' and text[j] == "\\") else 1
            line += text.count("\n", i, j)
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise ConfigError(
                    f"arrays or tables nested more than {MAX_NESTING} deep", path=path, line=line
                )
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1


def parse_toml(text: str, path: Optional[Path]) -> dict[str, Any]:
    """Parsed TOML, or a :class:`ConfigError` at the parser's line."""
    check_nesting(text, path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        problem = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", message)
        raise ConfigError(f"invalid TOML: {problem}", path=path, line=line) from None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_\-\"']+)\s*=")


def _split_key(raw: str) -> list[str]:
    return [part.strip().strip("\"'") for part in raw.split(".")]


def key_lines(text: str) -> dict[Loc, int]:
    """The line (1-based) where each key path is first written, with
    ``[[array]]`` tables numbered like the parsed list; keys of one-line
    inline tables (``cost = { input_per_million = 1 }``) included."""
    lines: dict[Loc, int] = {}
    counts: dict[Loc, int] = {}
    current: Loc = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            resolved: Loc = ()
            parts = _split_key(header.group(2))
            for i, part in enumerate(parts):
                resolved = (*resolved, part)
                last = i == len(parts) - 1
                if last and header.group(1) == "[[":
                    counts[resolved] = counts.get(resolved, -1) + 1
                    resolved = (*resolved, counts[resolved])
                elif resolved in counts:
                    resolved = (*resolved, counts[resolved])
                lines.setdefault(resolved, number)
            current = resolved
            continue
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("#"):
            path = current
            for part in _split_key(key.group(1)):
                path = (*path, part)
                lines.setdefault(path, number)
            rest = line[key.end() :]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault((*path, inner.group(1).strip("\"'")), number)
    return lines


def locate(lines: dict[Loc, int], loc: Loc) -> Optional[int]:
    """The line of ``loc``, else of its nearest written parent."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def dotted(loc: Loc) -> str:
    """``("models", 0, "cost")`` -> ``models[0].cost``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
