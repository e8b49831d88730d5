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
from collections.abc import Callable, Generator, Iterator
from typing import Any, Protocol

import lz4.frame

try:  # Python 3.14 ships zstd; before that the backport (a clickhouse-connect dependency).
    from compression import zstd  # type: ignore[import-not-found]  # stdlib only from 3.14; mypy checks as 3.11
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd

try:
    import brotli
except ImportError:  # pragma: no cover - brotli is a declared dependency
    brotli = None

from coinstream.clickhouse.server.errors import (
    CANNOT_DECOMPRESS,
    QUERY_IS_TOO_LARGE,
    UNKNOWN_COMPRESSION_METHOD,
    ClickHouseError,
)


class Decoder(Protocol):
    """Decodes a request body fed in raw chunks; every decoded piece is at most `OUTPUT_CHUNK`."""

    def feed(self, data: bytes) -> Generator[bytes, None, None]: ...

    def finish(self) -> bytes: ...


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


# The most bytes one decompression step may produce. A few hundred bytes of bzip2 or zstd expand
# to gigabytes; asking for bounded output lets the caller count (and stop) while decompressing.
OUTPUT_CHUNK = 1 << 20


class _Identity:
    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        for start in range(0, len(data), OUTPUT_CHUNK):
            yield data[start : start + OUTPUT_CHUNK]

    def compress(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _FramedDecoder:
    """Decoder over a decompressor with `max_length`, `needs_input`, `eof` and `unused_data`
    (bz2, lzma, zstd, lz4), restarting on the next frame when one ends."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._current = factory()
        self._started = False  # input seen since the current frame began

    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        while True:
            current = self._current
            if not data and current.needs_input:
                return
            self._started = self._started or bool(data)
            out = current.decompress(data, OUTPUT_CHUNK)
            data = b""
            if out:
                yield out
            if current.eof:
                data = current.unused_data
                self._current, self._started = self._factory(), False
                if not data:
                    return

    def finish(self) -> bytes:
        if self._started and not self._current.eof:
            raise ClickHouseError.make(CANNOT_DECOMPRESS, "Compressed request body is truncated")
        return b""


class _ZlibDecoder:
    """gzip/deflate, several members one after the other; bounded output per step."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._current = zlib.decompressobj(wbits=wbits)
        self._started = False

    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        while True:
            current = self._current
            self._started = self._started or bool(data)
            out = current.decompress(data, OUTPUT_CHUNK)
            if out:
                yield out
            if current.eof:
                data = current.unused_data
                self._current, self._started = zlib.decompressobj(wbits=self._wbits), False
                if not data:
                    return
                continue
            data = current.unconsumed_tail
            if not data and not out:
                return

    def finish(self) -> bytes:
        if self._started and not self._current.eof:
            raise ClickHouseError.make(CANNOT_DECOMPRESS, "Compressed request body is truncated")
        return b""


def _brotli_steps(decoder: Any, data: bytes) -> Iterator[bytes]:
    """Feed `data` to a brotli decoder and drain it, in bounded pieces of output."""
    out = decoder.process(data, output_buffer_limit=OUTPUT_CHUNK)
    if out:
        yield out
    while not decoder.can_accept_more_data():
        out = decoder.process(b"", output_buffer_limit=OUTPUT_CHUNK)
        if out:
            yield out


class _BrotliDecoder:
    """Brotli, including several concatenated streams.

    The brotli binding has no `unused_data`: when a piece of input holds the end of one stream and
    the start of the next, the decoder fails. Then the current stream is decoded again (output
    discarded) up to the failing piece, that piece fed byte by byte to find the boundary, and
    decoding resumes. Input is fed in small pieces so the byte-by-byte search stays short;
    boundaries are rare (one per insert block), so the slow path costs little.
    """

    PIECE = 4096

    def __init__(self) -> None:
        if brotli is None:  # pragma: no cover
            raise ClickHouseError.make(UNKNOWN_COMPRESSION_METHOD, "brotli is not installed")
        self._reset()

    def _reset(self) -> None:
        self._decoder = brotli.Decompressor()
        self._stream: list[bytes] = []  # the current stream's input so far

    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        for start in range(0, len(data), self.PIECE):
            piece = data[start : start + self.PIECE]
            while piece:
                if self._decoder.is_finished():
                    self._reset()
                emitted = 0
                try:
                    for out in _brotli_steps(self._decoder, piece):
                        emitted += len(out)
                        yield out
                    self._stream.append(piece)
                    piece = b""
                except brotli.error:
                    piece = yield from self._resync(piece, emitted)

    def _resync(self, piece: bytes, emitted: int) -> Generator[bytes, None, bytes]:
        """Find where the current stream ends inside `piece`; return the input after it."""
        decoder = brotli.Decompressor()
        for earlier in self._stream:
            for _ in _brotli_steps(decoder, earlier):
                pass
        skip = emitted  # output of this piece already delivered before the failure
        for index in range(len(piece)):
            try:
                for out in _brotli_steps(decoder, piece[index : index + 1]):
                    if skip >= len(out):
                        skip -= len(out)
                        continue
                    out, skip = out[skip:], 0
                    yield out
            except brotli.error:
                break
            if decoder.is_finished():
                self._reset()
                return piece[index + 1 :]
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


def body_too_large(limit: int, what: str) -> ClickHouseError:
    """The answer (HTTP 413) to a request body beyond the server's limit."""
    return ClickHouseError.make(
        QUERY_IS_TOO_LARGE,
        f"Request body too large: more than {limit} bytes {what} (the embedded server's --max-body-bytes)",
    )


def request_decoder(content_encoding: str | None, max_bytes: int | None = None) -> Decoder:
    """The decoder for a request's `Content-Encoding` (identity when absent).

    With `max_bytes`, decoding stops with HTTP 413 as soon as the output passes it, before the
    next piece is produced, so a decompression bomb never expands beyond the limit.
    """
    name = (content_encoding or "").strip().lower()
    if name in ("", "identity", "none"):
        inner: Decoder = _Identity()
    else:
        factory = _DECODERS.get(name)
        if factory is None:
            raise ClickHouseError.make(UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method: {name}")
        inner = factory()
    return _GuardedDecoder(inner, max_bytes)


class _GuardedDecoder:
    """Counts decoded bytes against the limit and turns codec errors into CANNOT_DECOMPRESS."""

    def __init__(self, inner: Decoder, max_bytes: int | None) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self.decoded = 0

    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        pieces = self._inner.feed(data)
        while True:
            try:
                piece = next(pieces)
            except StopIteration:
                return
            except ClickHouseError:
                raise
            except Exception as error:
                raise ClickHouseError.make(CANNOT_DECOMPRESS, f"Cannot decompress request body: {error}") from None
            self.decoded += len(piece)
            if self._max_bytes is not None and self.decoded > self._max_bytes:
                pieces.close()
                raise body_too_large(self._max_bytes, "after decompression")
            yield piece

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
