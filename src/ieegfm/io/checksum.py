"""File checksums (shards, work files, manifests, checkpoints)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, bufsize: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``bufsize`` pieces (memory bounded whatever the file size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()
