"""Reading a response body under the limits: the watchdog, the decoder, the capped copy.

:class:`Deadline` is the watchdog of the total timeout: it shuts down the sockets the guarded
adapter opened, so a server dripping bytes cannot keep a fetch alive. :class:`Decoder`
decompresses gzip and deflate in bounded steps, so :func:`copy_body` can count the output and
stop a compression bomb before it sits in memory whole. :func:`check_xlsx` refuses an XLSX file
whose zip directory promises a bomb, before anyone opens it.

These are the body guards of :class:`harvesters.http.GuardedFetcher`; their names can be
imported from :mod:`harvesters.http` and :mod:`harvesters.netguard` as before.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from http.client import HTTPException
from pathlib import Path
from typing import IO

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from harvesters.errors import (
    CompressionBomb,
    FetchFailed,
    FetchTimeout,
    InvalidItem,
    ResponseTooLarge,
)
from harvesters.http_policy import FetchPolicy

__all__ = ["Deadline", "Decoder", "check_xlsx", "copy_body", "total_timeout"]

_CHUNK = 64 * 1024
_RATIO_FLOOR = 1024 * 1024  # below this, a high ratio is a small repetitive file, not a bomb
_STEP = 64 * 1024  # the most one decompression step may produce


class Deadline:
    """The total timeout: a watchdog that shuts down the sockets opened during one fetch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _shutdown(sock)

    @property
    def passed(self) -> bool:
        return self._expired or time.monotonic() >= self._at

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv(); close() alone would not
    except OSError:
        pass  # already closed


class Decoder:
    """Decompresses gzip/deflate in bounded steps, so a bomb never sits in memory whole."""

    def __init__(self, encoding: str, url: str) -> None:
        self.encoding = encoding.strip().lower()
        self.url = url
        self._wbits = {
            "gzip": 16 + zlib.MAX_WBITS,
            "x-gzip": 16 + zlib.MAX_WBITS,
            "deflate": zlib.MAX_WBITS,
        }.get(self.encoding, 0)
        if self.encoding not in ("", "identity") and not self._wbits:
            raise FetchFailed(
                f"{url} uses Content-Encoding {encoding!r}; only gzip and deflate are accepted"
            )
        self._z = zlib.decompressobj(self._wbits) if self._wbits else None
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            yield data
            return
        while data:
            try:
                out = self._z.decompress(data, _STEP)
            except zlib.error as exc:
                if self.encoding == "deflate" and not self._started:
                    # "deflate" is often sent raw, without the zlib wrapper the RFC asks for.
                    self._wbits, self._z = -zlib.MAX_WBITS, zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise FetchFailed(f"{self.url}: corrupt {self.encoding} body ({exc})") from exc
            self._started = True
            yield out
            data = self._z.unconsumed_tail
            if self._z.eof and self._z.unused_data.strip(b"\0"):  # another gzip member follows
                data = self._z.unused_data + data
                self._z = zlib.decompressobj(self._wbits)

    def flush(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


def total_timeout(url: str, policy: FetchPolicy) -> FetchTimeout:
    """The error of a fetch of ``url`` that outlived ``policy.total_timeout``.

    :param url: the URL being fetched.
    :param policy: supplies the total timeout.
    """
    return FetchTimeout(f"{url} took longer than the total timeout of {policy.total_timeout:g} s")


def copy_body(
    response: requests.Response,
    url: str,
    out: IO[bytes],
    limit: int,
    deadline: Deadline,
    policy: FetchPolicy,
) -> tuple[str, int]:
    """Copy the (decompressed) body of ``response`` to ``out``, under the size and time caps.

    :param response: a streamed response, its body not read yet.
    :param url: the URL it answered, for the messages.
    :param out: where the body goes.
    :param limit: the most bytes the body may have, after decompression.
    :param deadline: the watchdog of the current fetch.
    :param policy: supplies the read timeout and the largest decompression ratio.
    :returns: the sha256 (hex) and the size of what was written.
    :raises FetchTimeout: when a timeout expires.
    :raises FetchFailed: when the connection breaks or the body cannot be decoded.
    :raises ResponseTooLarge: when the body exceeds ``limit``.
    :raises CompressionBomb: when the body decompresses beyond ``policy.max_ratio``.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(
            f"{url} is {int(declared):,} bytes (Content-Length), more than "
            f"the limit of {limit:,} bytes"
        )
    decoder = Decoder(response.headers.get("Content-Encoding", ""), url)
    digest, raw, size = hashlib.sha256(), 0, 0
    while True:
        if deadline.passed:
            raise total_timeout(url, policy)
        try:
            chunk = response.raw.read1(_CHUNK, decode_content=False)
        except (HTTPError, HTTPException, OSError) as exc:
            if deadline.passed:
                raise total_timeout(url, policy) from exc
            if isinstance(exc, ReadTimeoutError | TimeoutError):
                raise FetchTimeout(
                    f"{url} sent nothing for {policy.read_timeout:g} s after {raw:,} bytes"
                ) from exc
            raise FetchFailed(f"{url}: connection broken after {raw:,} bytes ({exc})") from exc
        raw += len(chunk)
        # Lazily: one compressed chunk may hold a thousand times its size.
        for piece in decoder.feed(chunk) if chunk else iter([decoder.flush()]):
            size += len(piece)
            if size > limit:
                raise ResponseTooLarge(f"{url} is larger than the limit of {limit:,} bytes")
            if size > _RATIO_FLOOR and size > raw * policy.max_ratio:
                raise CompressionBomb(
                    f"{url}: {decoder.encoding} body expands more than "
                    f"{policy.max_ratio:g} times ({raw:,} bytes became {size:,})"
                )
            digest.update(piece)
            out.write(piece)
        if not chunk:
            break
    if deadline.passed:  # the watchdog ends a close-delimited body looking complete
        raise total_timeout(url, policy)
    return digest.hexdigest(), size


def check_xlsx(
    path: Path,
    max_uncompressed: int = 1024 * 1024 * 1024,
    max_ratio: float = 200.0,
    *,
    max_entries: int = 10_000,
) -> None:
    """Refuse an XLSX whose zip directory promises a decompression bomb, before anyone opens it.

    Reading the directory is enough: :mod:`zipfile` (which openpyxl uses) stops each entry at its
    declared size, so the declared sizes bound what a reader can be made to decompress.

    :param path: the downloaded file.
    :param max_uncompressed: largest total of the entries' uncompressed sizes.
    :param max_ratio: largest uncompressed/compressed ratio of one entry (above 1 MiB).
    :param max_entries: most entries in the archive.
    :raises InvalidItem: when the file is not a zip archive.
    :raises CompressionBomb: when a limit is exceeded.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise InvalidItem(f"{path.name} is not a valid XLSX file ({exc})") from exc
    if len(entries) > max_entries:
        raise CompressionBomb(f"{path.name} holds {len(entries):,} entries (limit {max_entries:,})")
    total = sum(entry.file_size for entry in entries)
    if total > max_uncompressed:
        raise CompressionBomb(
            f"{path.name} would expand to {total:,} bytes (limit {max_uncompressed:,})"
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > _RATIO_FLOOR and ratio > max_ratio:
            raise CompressionBomb(
                f"{path.name}: {entry.filename} expands {ratio:,.0f} times (limit {max_ratio:g})"
            )
