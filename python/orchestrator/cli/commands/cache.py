"""``orchestrator cache stats`` and ``orchestrator cache clear``."""

from __future__ import annotations

import asyncio
from typing import Any, Union

from orchestrator.cli import context
from orchestrator.cli.app import EXIT_CONFIG, STATE, CLIError, cache_app
from orchestrator.cli.output import console, money, one_line, print_note, print_table, table
from orchestrator.config import build_cache
from orchestrator.core.cache import ModelCache
from orchestrator.core.cache_backends import StoreSize

#: How each statistic is shown; anything unknown (``None``) is shown as "unknown".
_FORMATS: dict[str, str] = {"hit_rate": "{:.2%}", "latency_saved": "{:.3f}s"}


def configured_cache() -> ModelCache:
    """The cache of the configuration file, or a configuration error."""
    loaded = context.load(require_file=True)
    base = loaded.path.parent if loaded.path is not None else None
    cache = build_cache(loaded.config.cache, base)
    if cache is None:
        raise CLIError(
            f"no cache configured in {loaded.path}: add a [cache] table with enabled = true",
            EXIT_CONFIG,
        )
    return cache


def shown(key: str, value: Any) -> str:
    """One statistic as text: never a raw ``None``."""
    if value is None:
        return "unknown"
    if key == "cost_saved":
        return money(float(value))
    template = _FORMATS.get(key)
    return template.format(value) if template else str(value)


async def counted(cache: ModelCache) -> Union[StoreSize, Exception]:
    """The store's own count of the namespace's entries, or why it has none
    (unreachable, or past the count's time bound), then the cache closed."""
    try:
        return await cache.count_entries()
    except Exception as exc:  # every store fails its own way; the reason is shown
        return exc
    finally:
        await cache.aclose()


@cache_app.command("stats")
def cache_stats() -> None:
    """Show the configured cache's statistics.

    Entries and bytes are counted in the store itself.
    """
    cache = configured_cache()
    stats = cache.get_statistics().model_dump()
    size = context.run(counted(cache))
    if isinstance(size, StoreSize):
        stats.update(entries=size.entries, bytes=size.bytes)
    else:
        stats.update(entries=None, bytes=None)
    rows = table("cache", ["statistic", "value"], numeric=["value"])
    for key, value in stats.items():
        rows.add_row(key, shown(key, value))
    print_table(rows)
    if isinstance(size, Exception):
        print_note(f"entries and bytes unknown: the store could not count them ({one_line(size)})")
    console.print(
        "[dim]hits, misses and savings count this process's lookups; entries and bytes "
        "are the namespace's live entries in the store[/dim]"
    )
    loaded = STATE.loaded
    if loaded is not None and loaded.config.cache.backend == "memory":
        console.print(
            '[dim]the memory backend lives in one process; use backend = "disk" or '
            '"redis" to keep answers between commands[/dim]'
        )


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every cached answer."""
    cache = configured_cache()
    result = cache.clear()
    if asyncio.iscoroutine(result):
        context.run(result)
    console.print("cache cleared")
