"""Bounded reads of the files a user points labctl at: protocols, stations (and campaigns).

A path on the command line can be anything: a symlink to /dev/zero (an endless read until memory runs out),
a FIFO (an open that blocks for ever), a directory, a 10 GB log. `read_bounded` reads only a regular file
(after resolving symlinks), at most `MAX_BYTES`, without ever blocking: the kind and size are checked with
`stat` before opening, the open is non-blocking, and the opened file is checked again (`fstat`) so a path
swapped for something else in between is refused too. Every refusal is a `FileRefused` naming the path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from labctl.errors import ConfigError

MAX_BYTES = 1_000_000  # 1 MB: a protocol or station file is a few kB; the largest shipped one is under 5 kB

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(ConfigError):
    """A file labctl will not read: missing, not a regular file, too large, or unreadable."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: str | Path, *, limit: int = MAX_BYTES, display: str | None = None) -> bytes:
    """The bytes of the regular file at `path` (symlinks resolved), refusing anything else or over `limit`."""
    name = display or str(path)
    try:
        real = Path(path).resolve(strict=True)
        before = os.stat(real)
    except FileNotFoundError:
        raise FileRefused(name, "cannot read the file: no such file") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise FileRefused(name, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    where = "" if str(real) == os.path.abspath(name) else f" ({real})"
    if not stat.S_ISREG(before.st_mode):
        raise FileRefused(name, f"is {_kind(before.st_mode)}{where}, not a regular file")
    if before.st_size > limit:
        raise FileRefused(name, f"file is {before.st_size} bytes; the limit is {limit} ({limit / 1e6:g} MB)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise FileRefused(name, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise FileRefused(name, "the file changed while it was being opened; not read")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew after the stat
            raise FileRefused(name, f"file is over the limit of {limit} bytes ({limit / 1e6:g} MB)")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(name, f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
