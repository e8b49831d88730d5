"""HTTP body compression as ClickHouse speaks it: `Content-Encoding` in, `Accept-Encoding` out.

Why incremental codecs: request bodies (inserts) and response bodies (query results) can be far
larger than memory should hold, so both directions work chunk by chunk. Request bodies may be a
concatenation of independently compressed frames (clickhouse-connect compresses every insert block
on its own), so every decoder restarts on the next frame when one ends, as ClickHouse's do.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Callable, Protocol

import lz4.frame

try:  # Python 3.14 ships zstd; before that the backport (a clickhouse-connect dependency).
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[no-redef]

try:
    import brotli
except ImportError:  # pragma: no cover - brotli is a declared dependency
    brotli = None

from clickhouse.server.errors import CANNOT_DECOMPRESS, UNKNOWN_COMPRESSION_METHOD, ClickHouseError


class Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def compress(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _FramedDecoder:
    """Decoder over a stdlib-style decompressor object (`eof`, `unused_data`), restarting per frame."""

    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory
        self._current = factory()
        self._started = False  # input seen since the current frame began

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            current = self._current
            if current.eof:  # type: ignore[attr-defined]
                current = self._current = self._factory()
            out.append(current.decompress(data))  # type: ignore[attr-defined]
            self._started = True
            data = current.unused_data if current.eof else b""  # type: ignore[attr-defined]
            if current.eof:  # type: ignore[attr-defined]
                self._current = self._factory()
                self._started = False
        return b"".join(out)

    def finish(self) -> bytes:
        if self._started and not self._current.eof:  # type: ignore[attr-defined]
            raise ClickHouseError.make(CANNOT_DECOMPRESS, "Compressed request body is truncated")
        return b""


class _ZlibDecoder(_FramedDecoder):
    """gzip/deflate: zlib's objects report `eof` and `unused_data` like the others."""

    def __init__(self, wbits: int) -> None:
        super().__init__(lambda: zlib.decompressobj(wbits=wbits))


class _BrotliDecoder:
    """Brotli, including several concatenated streams.

    The brotli binding has no `unused_data`: when a chunk holds the end of one stream and the
    start of the next, the decoder fails. Then the current stream is decoded again up to the
    failing chunk, that chunk fed byte by byte to find the boundary, and decoding resumes.
    Boundaries are rare (one per insert block), so the slow path costs little.
    """

    def __init__(self) -> None:
        if brotli is None:  # pragma: no cover
            raise ClickHouseError.make(UNKNOWN_COMPRESSION_METHOD, "brotli is not installed")
        self._decoder = brotli.Decompressor()
        self._stream = bytearray()

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._decoder.is_finished():
                self._decoder, self._stream = brotli.Decompressor(), bytearray()
            try:
                out.append(self._decoder.process(data))
                self._stream += data
                data = b""
            except brotli.error:
                data = self._resync(data, out)
        return b"".join(out)

    def _resync(self, data: bytes, out: list[bytes]) -> bytes:
        decoder = brotli.Decompressor()
        decoder.process(bytes(self._stream))  # output already delivered
        for index in range(len(data)):
            try:
                out.append(decoder.process(data[index:index + 1]))
            except brotli.error:
                break
            if decoder.is_finished():
                self._decoder, self._stream = brotli.Decompressor(), bytearray()
                return data[index + 1:]
        raise ClickHouseError.make(CANNOT_DECOMPRESS, "Cannot decompress brotli-encoded request body")

    def finish(self) -> bytes:
        if self._stream and not self._decoder.is_finished():
            raise ClickHouseError.make(CANNOT_DECOMPRESS, "Compressed request body is truncated")
        return b""


_DECODERS: dict[str, Callable[[], Decoder]] = {
    "gzip": lambda: _ZlibDecoder(wbits=16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _ZlibDecoder(wbits=16 + zlib.MAX_WBITS),
    "deflate": lambda: _ZlibDecoder(wbits=zlib.MAX_WBITS),
    "br": _BrotliDecoder,
    "zstd": lambda: _FramedDecoder(zstd.ZstdDecompressor),
    "lz4": lambda: _FramedDecoder(lz4.frame.LZ4FrameDecompressor),
    "xz": lambda: _FramedDecoder(lzma.LZMADecompressor),
    "bz2": lambda: _FramedDecoder(bz2.BZ2Decompressor),
}


def request_decoder(content_encoding: str | None) -> Decoder:
    """The decoder for a request's `Content-Encoding` (identity when absent)."""
    name = (content_encoding or "").strip().lower()
    if name in ("", "identity", "none"):
        return _Identity()
    factory = _DECODERS.get(name)
    if factory is None:
        raise ClickHouseError.make(UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method: {name}")
    return _GuardedDecoder(factory())


class _GuardedDecoder:
    """Turns a codec library's own exception into ClickHouse's CANNOT_DECOMPRESS."""

    def __init__(self, inner: Decoder) -> None:
        self._inner = inner

    def feed(self, data: bytes) -> bytes:
        try:
            return self._inner.feed(data)
        except ClickHouseError:
            raise
        except Exception as error:
            raise ClickHouseError.make(CANNOT_DECOMPRESS, f"Cannot decompress request body: {error}") from None

    def finish(self) -> bytes:
        return self._inner.finish()


class _ZlibEncoder:
    def __init__(self, wbits: int) -> None:
        self._codec = zlib.compressobj(level=3, wbits=wbits)

    def compress(self, data: bytes) -> bytes:
        # A sync flush per chunk so a streaming reader gets every chunk without waiting.
        return self._codec.compress(data) + self._codec.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._codec.flush()


class _ZstdEncoder:
    def __init__(self) -> None:
        self._codec = zstd.ZstdCompressor()

    def compress(self, data: bytes) -> bytes:
        return self._codec.compress(data, mode=zstd.ZstdCompressor.FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._codec.flush()


class _Lz4Encoder:
    def __init__(self) -> None:
        self._codec = lz4.frame.LZ4FrameCompressor(auto_flush=True)
        self._header: bytes | None = self._codec.begin()

    def compress(self, data: bytes) -> bytes:
        header, self._header = self._header or b"", None
        return header + self._codec.compress(data)

    def finish(self) -> bytes:
        header, self._header = self._header or b"", None
        return header + self._codec.flush()


class _BrotliEncoder:
    def __init__(self) -> None:
        self._codec = brotli.Compressor(quality=3)

    def compress(self, data: bytes) -> bytes:
        return self._codec.process(data) + self._codec.flush()

    def finish(self) -> bytes:
        return self._codec.finish()


_ENCODERS: dict[str, Callable[[], Encoder]] = {
    "zstd": _ZstdEncoder,
    "lz4": _Lz4Encoder,
    "gzip": lambda: _ZlibEncoder(wbits=16 + zlib.MAX_WBITS),
    "deflate": lambda: _ZlibEncoder(wbits=zlib.MAX_WBITS),
}
if brotli is not None:
    _ENCODERS["br"] = _BrotliEncoder

# Preference when a client accepts several: fast codecs first.
_PREFERENCE = ("zstd", "lz4", "gzip", "br", "deflate")


def response_encoder(accept_encoding: str | None) -> tuple[str, Encoder] | None:
    """The encoding to answer with for an `Accept-Encoding` header, or None for identity."""
    accepted = set()
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if params.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if name:
            accepted.add(name)
    for name in _PREFERENCE:
        if name in accepted and name in _ENCODERS:
            return name, _ENCODERS[name]()
    return None
