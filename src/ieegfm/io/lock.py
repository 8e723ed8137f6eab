"""One writer per output folder: an advisory lock that a second ``ieegfm pack`` / ``pretrain`` / ``scale`` refuses.

The lock is ``flock`` on ``<out>/.ieegfm.lock``, held for the whole command. The kernel releases it when the
process ends, however it ends (``kill -9``, a node failure), so a crash never leaves a stale lock behind; the file
only says who holds it (command, pid, host, start time) for the error message. POSIX only (``fcntl``); elsewhere the
lock is a no-op with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ieegfm.errors import InputError

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
