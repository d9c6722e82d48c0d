"""The local spool: what a worker could not deliver when it stopped during a
Redis outage, kept on disk until the next worker of the same namespace
delivers it, exactly once.

A spool file is JSON (never pickle), written to a temporary name, flushed to
disk and renamed, so a reader sees a whole file or none. It holds the stopped
worker's ledger (what Redis had confirmed) and its undelivered batches with
their sequence numbers; the next worker restores that ledger and applies the
batches *as the stopped worker*, so a batch Redis had applied before the
outage (its reply lost) is recognised by its seq and not counted twice.

A worker claims a file by renaming it to ``<name>.claimed-<pid>-<token>``
(one rename wins; the token tells apart the workers of one process); a claim
whose process is gone is taken over, and a claim not finished at ``close()``
is released.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

logger = logging.getLogger(__name__)

#: Format of a spool file; files of another format are left alone.
SPOOL_FORMAT = 1
#: Environment variable that overrides the default spool directory.
SPOOL_DIR_ENV = "ORCHESTRATOR_SPOOL_DIR"
#: A spool file larger than this is refused (it holds counters, not a log).
MAX_SPOOL_BYTES = 16 * 1024 * 1024

_CLAIMED = re.compile(r"\.claimed-(\d+)-([0-9A-Za-z]+)$")


def default_spool_dir() -> Path:
    """``$ORCHESTRATOR_SPOOL_DIR``, else ``$XDG_CACHE_HOME/orchestrator/spool``,
    else ``~/.cache/orchestrator/spool``."""
    explicit = os.environ.get(SPOOL_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "orchestrator" / "spool"


def spool_folder(root: Union[str, os.PathLike[str]], target: str, namespace: str) -> Path:
    """The folder of one namespace on one Redis (``target`` is its URL without
    credentials), so two deployments sharing a machine never swap spools."""
    digest = hashlib.sha256(f"{target}\n{namespace}".encode()).hexdigest()[:16]
    return Path(root).expanduser() / digest


@dataclass
class Counters:
    """Field/value sums of one batch or one ledger, as the scripts take them."""

    ints: dict[str, int] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    disc: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ints": self.ints, "floats": self.floats, "disc": self.disc}

    @classmethod
    def from_json(cls, data: object) -> Counters:
        """Counters from a spool file, checked: names are strings, integers are
        integers, floats are finite."""
        if not isinstance(data, dict):
            raise ValueError("counters are not an object")
        ints = _typed(data.get("ints", {}), int)
        floats = _typed(data.get("floats", {}), float)
        disc = _typed(data.get("disc", {}), float)
        return cls(
            {k: int(v) for k, v in ints.items()},
            {k: float(v) for k, v in floats.items()},
            {k: float(v) for k, v in disc.items()},
        )


def _typed(table: object, kind: type) -> dict[str, Union[int, float]]:
    if not isinstance(table, dict):
        raise ValueError("a counter table is not an object")
    for key, value in table.items():
        if not isinstance(key, str) or isinstance(value, bool):
            raise ValueError(f"bad counter {key!r}")
        if kind is int and not isinstance(value, int):
            raise ValueError(f"counter {key!r} is not an integer: {value!r}")
        if kind is float and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"counter {key!r} is not a finite number: {value!r}")
    return table


@dataclass
class Spool:
    """What a stopped worker left: its confirmed ledger and its pending batches."""

    worker: str
    ledger_key: str
    seq: int
    ref: Optional[int]
    ledger: Counters
    pending: list[Counters]

    def requests(self) -> int:
        """Outcomes in the pending batches (for messages)."""
        return sum(v for c in self.pending for k, v in c.ints.items() if k.endswith(":requests"))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SPOOL_FORMAT,
            "worker": self.worker,
            "ledger_key": self.ledger_key,
            "seq": self.seq,
            "ref": self.ref,
            "ledger": self.ledger.to_json(),
            "pending": [c.to_json() for c in self.pending],
        }

    @classmethod
    def from_json(cls, data: object) -> Spool:
        if not isinstance(data, dict) or data.get("format") != SPOOL_FORMAT:
            raise ValueError(f"not a spool file of format {SPOOL_FORMAT}")
        worker, key, seq, ref = (data.get(k) for k in ("worker", "ledger_key", "seq", "ref"))
        if not isinstance(worker, str) or not isinstance(key, str):
            raise ValueError("worker and ledger_key must be strings")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(f"bad seq {seq!r}")
        if ref is not None and (not isinstance(ref, int) or isinstance(ref, bool)):
            raise ValueError(f"bad ref {ref!r}")
        pending = data.get("pending")
        if not isinstance(pending, list):
            raise ValueError("pending is not a list")
        return cls(
            worker,
            key,
            seq,
            ref,
            Counters.from_json(data.get("ledger")),
            [Counters.from_json(p) for p in pending],
        )


def write_spool(folder: Path, spool: Spool) -> Path:
    """Write ``spool`` atomically into ``folder`` (created, mode 0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", spool.worker) + ".json"
    final = folder / name
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(spool.to_json(), handle, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return final


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_spools(folder: Path, token: str) -> list[Path]:
    """Claim for the worker ``token`` of this process every spool file of
    ``folder`` not claimed by a live process (its own earlier claims
    included); returns the claimed paths."""
    if not folder.is_dir():
        return []
    me = os.getpid()
    mine = f".claimed-{me}-{token}"
    claimed: list[Path] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith(".tmp-"):
            continue
        match = _CLAIMED.search(name)
        if match is not None:
            if name.endswith(mine):
                claimed.append(path)
                continue
            owner = int(match.group(1))
            if owner == me or _process_alive(owner):
                continue
            base = name[: match.start()]
        elif name.endswith(".json"):
            base = name
        else:
            continue
        target = folder / f"{base}{mine}"
        try:
            os.rename(path, target)
        except OSError:  # another worker won the race
            continue
        claimed.append(target)
    return claimed


def read_spool(path: Path) -> Spool:
    """A claimed spool file, checked; ``ValueError`` when it is not one."""
    with path.open("rb") as handle:
        data = handle.read(MAX_SPOOL_BYTES + 1)
    if len(data) > MAX_SPOOL_BYTES:
        raise ValueError(f"larger than {MAX_SPOOL_BYTES} bytes")
    return Spool.from_json(json.loads(data))


def release_spool(path: Path) -> None:
    """Give a claimed file back, for the next worker."""
    match = _CLAIMED.search(path.name)
    if match is not None:
        with contextlib.suppress(OSError):
            os.rename(path, path.with_name(path.name[: match.start()]))


def quarantine_spool(path: Path, reason: str) -> None:
    """Set aside a file that is not a spool, so it is not claimed again."""
    logger.warning("shared state: ignoring spool file %s: %s", path, reason)
    match = _CLAIMED.search(path.name)
    base = path.name[: match.start()] if match is not None else path.name
    with contextlib.suppress(OSError):
        os.rename(path, path.with_name(f"{base}.bad"))
