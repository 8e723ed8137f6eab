"""``ieegfm embed``: every window's embedding, with its subject, block, split and times, for analyses elsewhere.

The folder written (``out=DIR``):

- ``embeddings.npy``: float32, shape (n_windows, n_features) (``model.pooling=mean``) or (n_windows, n_features,
  n_times): the model's outputs, one row per window;
- ``targets.npy``: float32, the same shape: the audio targets each window was paired with (z-scored features,
  averaged as the model pools them), for encoding models, CCA or RSA between the two spaces;
- ``windows.tsv``: one row per window, in the arrays' order: ``index``, ``subject``, ``block``, ``split``,
  ``key`` (the shard sample), ``tmin`` (s from the block's start), ``start_time`` (ISO 8601 UTC, as the manifest
  writes dates: shifted when the pack was anonymized), ``local_time`` (the site's clock), ``day``;
- ``embed.json``: what was embedded (checkpoint, shards, splits, shapes, window length, the format).

Why ``.npy`` + ``.tsv`` rather than Parquet or Zarr: NumPy memory-maps an ``.npy`` (a week of windows need not fit
in memory), every language reads both without a dependency ieegfm does not already have, and the table opens in
a spreadsheet or ``pandas.read_csv(sep="\\t")``. Windows are those of evaluation (fixed, non-overlapping, in shard
order), as :func:`ieegfm.evaluation.evaluate.embed_split` reads them.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from ieegfm.checkpoint import model_for_shards
from ieegfm.data import ShardDataModule
from ieegfm.errors import InputError
from ieegfm.evaluation.evaluate import embed_split
from ieegfm.io.manifest import Manifest, read_manifest
from ieegfm.io.tsv import read_tsv

logger = logging.getLogger(__name__)

#: Columns of ``windows.tsv``, in order.
COLUMNS = ("index", "subject", "block", "split", "key", "tmin", "start_time", "local_time", "day")


def window_datetimes(manifest: Manifest, block: np.ndarray, tmin: np.ndarray) -> list[dt.datetime]:
    """The start of each window as a timezone-aware datetime (block start from the manifest, plus ``tmin``).

    Parameters
    ----------
    manifest : Manifest
        Holds ``blocks.<id>.start_time`` (ISO 8601; as written: shifted when the pack was anonymized; naive times
        are UTC).
    block : ndarray of str, shape (n_windows,)
    tmin : ndarray of float, shape (n_windows,)
        Seconds from the block's start.

    Returns
    -------
    list of datetime.datetime, length n_windows
    """
    starts: dict[str, dt.datetime] = {}
    out = []
    for b, s in zip(block, tmin):
        b = str(b)
        if b not in starts:
            t = dt.datetime.fromisoformat(manifest.blocks[b]["start_time"])
            starts[b] = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
        out.append(starts[b] + dt.timedelta(seconds=float(s)))
    return out


def window_times(manifest: Manifest, block: np.ndarray, tmin: np.ndarray) -> tuple[list[str], list[str]]:
    """ISO 8601 start of each window in UTC and on the site's clock (``manifest.timezone``).

    Parameters
    ----------
    manifest : Manifest
        Holds ``blocks.<id>.start_time`` (as written: shifted when the pack was anonymized).
    block : ndarray of str, shape (n_windows,)
    tmin : ndarray of float, shape (n_windows,)
        Seconds from the block's start.

    Returns
    -------
    start_time, local_time : list of str
    """
    tz = ZoneInfo(manifest.timezone or "UTC")
    times = window_datetimes(manifest, block, tmin)
    utc = [t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds") for t in times]
    local = [t.astimezone(tz).isoformat(timespec="milliseconds") for t in times]
    return utc, local


def embed(cfg) -> Path:
    """Embed every window of ``cfg.splits`` and write the folder described in the module docstring.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.EmbedConfig`.

    Returns
    -------
    out : Path
        The folder written.

    Raises
    ------
    InputError
        As :func:`ieegfm.checkpoint.model_for_shards`; none of the splits has windows; a block the manifest does
        not list.
    """
    manifest = read_manifest(cfg.shards)
    model, contract = model_for_shards(cfg.ckpt, manifest, cfg.shards, cfg.channels)
    enc = contract.encoder
    window_s = enc["n_times"] / enc["sfreq"]
    dm = ShardDataModule(cfg.shards, batch_size=cfg.batch_size, window_s=window_s)
    labels = {i: s for s, i in manifest.subject_index().items()}
    parts = []
    for split in cfg.splits:
        if dm.urls(split):
            parts.append((split, embed_split(model, dm, split)))
    if not parts:
        raise InputError(f"shards={cfg.shards}: none of splits={list(cfg.splits)} has windows")
    brain = np.concatenate([e["brain"].numpy() for _, e in parts]).astype(np.float32)
    audio = np.concatenate([e["audio"].numpy() for _, e in parts]).astype(np.float32)
    block = np.concatenate([e["block"] for _, e in parts])
    missing = sorted({str(b) for b in block} - set(manifest.blocks))
    if missing:
        raise InputError(f"shards={cfg.shards}: manifest.json lists no block {missing[0]}; expected every block")
    tmin = np.concatenate([e["tmin"] for _, e in parts])
    start, local = window_times(manifest, block, tmin)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, array in (("embeddings.npy", brain), ("targets.npy", audio)):
        tmp = out / f"{name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, array)
        tmp.replace(out / name)
    rows = []
    for split, e in parts:
        for j in range(len(e["block"])):
            rows.append((split, e, j))
    tmp = out / "windows.tsv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for i, (split, e, j) in enumerate(rows):
            w.writerow([i, labels[int(e["subject"][j])], e["block"][j], split, e["key"][j],
                        f"{float(e['tmin'][j]):.6g}", start[i], local[i], int(e["day"][j])])  # fmt: skip
    tmp.replace(out / "windows.tsv")
    info = {
        "ckpt": str(cfg.ckpt),
        "shards": str(cfg.shards),
        "splits": {split: int(len(e["block"])) for split, e in parts},
        "n_windows": int(len(brain)),
        "embeddings": {"file": "embeddings.npy", "shape": list(brain.shape), "dtype": "float32"},
        "targets": {"file": "targets.npy", "shape": list(audio.shape), "dtype": "float32"},
        "windows": {"file": "windows.tsv", "columns": list(COLUMNS)},
        "window_s": window_s,
        "pooling": getattr(model, "pooling", None),
        "timezone": manifest.timezone,
        "format": __doc__.split("\n\n")[1],
    }
    (out / "embed.json").write_text(json.dumps(info, indent=1) + "\n")
    logger.info(
        "embedded %d windows (%s) -> %s", len(brain), ", ".join(f"{s} {n}" for s, n in info["splits"].items()), out
    )
    return out


def read_embeddings(folder: str | Path) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Read a folder written by :func:`embed`: ``(embeddings, windows)`` (the array memory-mapped, the table rows).

    Raises
    ------
    InputError
        A missing file, or a table whose length differs from the array's.
    """
    folder = Path(folder)
    path = folder / "embeddings.npy"
    if not path.is_file():
        raise InputError(f"embeddings={folder}: no embeddings.npy; expected a folder written by `ieegfm embed`")
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    rows = [r for _, r in read_tsv(folder / "windows.tsv", "windows table", COLUMNS, "the table of `ieegfm embed`")]
    if len(rows) != len(x):
        raise InputError(f"embeddings={folder}: windows.tsv has {len(rows)} rows for {len(x)} embeddings")
    return x, rows
