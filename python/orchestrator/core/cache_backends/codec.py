"""The stored form of a cache entry: JSON, optionally compressed, checksummed.

Layout: ``b"OC"``, a format byte, a codec byte (``n`` none, ``z`` zlib,
``s`` zstd), the CRC-32 of the body (4 bytes, big endian), then the body.
Entries are data only (JSON, never pickle): whoever can write to a shared
store must not be able to run code in the readers. Any damage (bad header,
checksum, compression or JSON) raises :class:`CorruptEntry`, which the cache
treats as a miss.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Optional

from orchestrator.errors import CorruptEntry as CorruptEntry

MAGIC = b"OC"
FORMAT = 1
_HEADER = struct.Struct(">2sBcI")
HEADER_SIZE = _HEADER.size
#: Bodies shorter than this are stored uncompressed: compression would not pay.
COMPRESS_MIN = 256
#: The most a stored body may decompress to (guards against decompression bombs).
MAX_BODY = 64 * 1024 * 1024

_zstd: Any
try:  # optional dependency: the ``zstd`` extra
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None


def zstd_available() -> bool:
    """Whether the ``zstandard`` package is installed."""
    return _zstd is not None


class Codec:
    """Encodes JSON objects to stored bytes and back."""

    def __init__(self, compression: Optional[str]) -> None:
        if compression not in (None, "zlib", "zstd"):
            raise ValueError(f"invalid compression: {compression!r}")
        if compression == "zstd" and _zstd is None:
            raise ValueError("invalid compression: 'zstd' needs the zstandard package")
        self.compression = compression
        self._zc: Any = _zstd.ZstdCompressor(level=3) if compression == "zstd" and _zstd else None
        self._zd: Any = _zstd.ZstdDecompressor() if _zstd is not None else None

    def encode(self, obj: dict[str, Any]) -> bytes:
        """Serialise ``obj``; raises ``ValueError``/``TypeError`` when it is not
        plain JSON data (NaN, a lone surrogate, an object...)."""
        body = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )
        codec = b"n"
        if self.compression is not None and len(body) >= COMPRESS_MIN:
            packed = self._zc.compress(body) if self._zc is not None else zlib.compress(body, 6)
            if len(packed) < len(body):
                body = packed
                codec = b"s" if self._zc is not None else b"z"
        return _HEADER.pack(MAGIC, FORMAT, codec, zlib.crc32(body)) + body

    def decode(self, data: bytes) -> dict[str, Any]:
        """Read back what :meth:`encode` wrote, or raise :class:`CorruptEntry`."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER_SIZE:
            raise CorruptEntry("entry too short")
        magic, fmt, codec, crc = _HEADER.unpack_from(data)
        if magic != MAGIC or fmt != FORMAT:
            raise CorruptEntry("unknown entry format")
        body = bytes(data[HEADER_SIZE:])
        if zlib.crc32(body) != crc:
            raise CorruptEntry("checksum mismatch")
        try:
            if codec == b"s":
                if self._zd is None:
                    raise CorruptEntry("entry is zstd-compressed but zstandard is not installed")
                body = self._zd.decompress(body, max_output_size=MAX_BODY)
            elif codec == b"z":
                d = zlib.decompressobj()
                body = d.decompress(body, MAX_BODY)
                if d.unconsumed_tail or not d.eof:
                    raise CorruptEntry("zlib body truncated or too large")
            elif codec != b"n":
                raise CorruptEntry(f"unknown codec {codec!r}")
            obj = json.loads(body)
        except CorruptEntry:
            raise
        except Exception as exc:  # zstd/zlib/JSON/UTF-8 errors alike
            raise CorruptEntry(f"cannot decode entry: {exc}") from exc
        if not isinstance(obj, dict):
            raise CorruptEntry("entry is not a JSON object")
        return obj
