"""Output folders: one writer per folder (an advisory lock that a second ``ieegfm pack`` / ``pretrain`` / ``scale``
refuses), and write errors (disk full, a file size limit, read-only) reported in one line.

The lock is ``flock`` on ``<out>/.ieegfm.lock``, held for the whole command. The kernel releases it when the
process ends, however it ends (``kill -9``, a node failure), so a crash never leaves a stale lock behind; the file
only says who holds it (command, pid, host, start time) for the error message. POSIX only (``fcntl``); elsewhere the
lock is a no-op with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ieegfm.errors import InputError, OutputError

logger = logging.getLogger(__name__)

LOCK_NAME = ".ieegfm.lock"


@contextlib.contextmanager
def exclusive_output(out: str | Path, command: str) -> Iterator[None]:
    """Hold the output folder's lock for the duration of the block. A folder it had to create and that holds
    nothing but the lock afterwards (the command failed before writing) is removed again.

    Parameters
    ----------
    out : str | Path
        Output folder (created if missing).
    command : str
        The command holding it (``pack``, ``pretrain``, ``scale``), for the other writer's error message.

    Raises
    ------
    InputError
        Another process holds the lock (names its command, pid, host and start time).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        logger.warning("no fcntl on this platform: %s is not protected against a second writer", out)
        yield
        return
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            who = f"`ieegfm {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            who += f"since {holder.get('started', '?')})"
            raise InputError(
                f"out={out}: {who} is writing to this folder; expected one writer per output folder (wait for it to "
                "finish, or choose another out=)"
            ) from None
        info = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
        if created and [p.name for p in out.iterdir()] == [LOCK_NAME]:  # failed before writing: leave nothing
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()


#: errno values of a write that cannot succeed until the user acts (free space, raise a limit, fix permissions).
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for a file size limit (ulimit -f) or the file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EIO: "input/output error",
}


@contextlib.contextmanager
def write_errors_as_output_error(out: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` of :data:`WRITE_ERRNOS` raised in the block into a one-line :class:`OutputError`.

    Raises
    ------
    OutputError
        Names ``out``, the file when the system call reported it, the reason, and what to do.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        if err.errno in (errno.EACCES, errno.EIO) and not _inside(err.filename, out):  # (a read of an input?)
            raise
        where = f" ({err.filename})" if err.filename else ""
        raise OutputError(
            f"out={out}: cannot write{where}: {WRITE_ERRNOS[err.errno]} [errno {err.errno}]; nothing incomplete "
            "looks finished (temporary names, no manifest): free space or fix the folder, then run the same "
            "command again (finished work is kept)"
        ) from None


def _inside(filename, folder: str | Path) -> bool:
    if not filename:
        return False
    try:
        return Path(os.fsdecode(filename)).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False
