"""Deterministic WebDataset tar writer.

Shard schema (one WebDataset sample = one contiguous chunk of a recording block)::

    <key>.brain.npy   float16 (n_chans, n_times)     robust-scaled iEEG at ``sfreq`` (dimensionless, clamped)
    <key>.audio.npy   float16 (n_features, n_times)  z-scored audio targets at the same ``sfreq`` (packed with
                                                     ``audio.pool_s``: bin means at the manifest's ``audio_sfreq``)
    <key>.json        metadata: subject, session, source file, audio file, start_time (ISO 8601, UTC),
                      local_time (the site's clock), tmin (s into the block), day index, daytime flag, sfreq,
                      ch_names, split

Any WebDataset reader decodes it: ``wds.WebDataset(url).decode()`` yields dicts with the keys ``brain.npy``,
``audio.npy`` and ``json``. Same input and config give byte-identical files: members are written in a fixed
order with fixed ``mtime``/owner/mode, and ``.npy`` bytes are deterministic. Each tar is written to a temporary
name and renamed when complete, so an interrupted pack never leaves a shard that looks complete.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np

from ieegfm.io.checksum import sha256_file


def npy_bytes(array: np.ndarray) -> bytes:
    """Serialise an array as ``.npy`` bytes (C order, no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class ShardWriter:
    """Write samples into ``<out>/<prefix>-NNNNNN.tar``, ``samples_per_shard`` per file.

    Parameters
    ----------
    out : str | Path
        Folder.
    prefix : str
        Shard name prefix (the split: ``train``, ``val``, ``test``).
    samples_per_shard : int
        Samples per tar file.

    Attributes
    ----------
    shards : list of dict
        One entry per finished shard: ``name``, ``n_samples``, ``n_windows`` (filled by the caller's counts),
        ``sha256``, ``bytes``.
    """

    def __init__(self, out: str | Path, prefix: str, samples_per_shard: int = 64) -> None:
        if samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        self.out = Path(out)
        self.prefix = prefix
        self.samples_per_shard = samples_per_shard
        self.shards: list[dict] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._n = 0
        self._windows = 0

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._tmp = self.out / (name + ".tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self._n = 0
        self._windows = 0
        self._lengths: list[int] = []

    def write(
        self, key: str, members: dict[str, bytes | np.ndarray | dict], n_windows: int = 0, n_times: int | None = None
    ) -> None:
        """Add one sample; ``members`` maps extension (``brain.npy``, ``json``) to bytes, arrays or dicts.

        ``n_windows`` and ``n_times`` (the chunk's length in samples) are recorded per shard for the manifest.
        """
        if self._tar is None:
            self._open()
        assert self._tar is not None
        for ext in members:
            value = members[ext]
            if isinstance(value, np.ndarray):
                data = npy_bytes(value)
            elif isinstance(value, dict):
                data = json.dumps(value, sort_keys=True).encode()
            else:
                data = bytes(value)
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._n += 1
        self._windows += n_windows
        if n_times is not None:
            self._lengths.append(int(n_times))
        if self._n >= self.samples_per_shard:
            self._close()

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        assert self._tmp is not None
        final = self._tmp.with_suffix("")
        os.replace(self._tmp, final)
        self.shards.append(
            {
                "name": final.name,
                "n_samples": self._n,
                "n_windows": self._windows,
                "chunk_lengths": self._lengths,
                "sha256": sha256_file(final),
                "bytes": final.stat().st_size,
            }
        )
        self._tar = None

    def close(self) -> list[dict]:
        """Finish the open shard (if any) and return :attr:`shards`."""
        self._close()
        return self.shards
