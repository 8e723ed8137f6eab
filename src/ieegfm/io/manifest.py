"""A shard folder's ``manifest.json``: its schema, the one reader and the one writer.

Every shard folder (``ieegfm pack``, ``ieegfm import-n2s``, the control shards of ``pretrain control=…``, the
subset views of ``ieegfm scale``) holds ``manifest.json`` (what the shards are: rates, channels, scalers, splits,
one entry per shard) and ``sizes.json`` (samples per shard, for WebDataset tools). :class:`Manifest` is the schema;
:func:`read_manifest` checks what readers rely on and turns a damaged file into one line; :func:`write_manifest`
writes both files atomically, ``manifest.json`` last (a folder without it is not finished).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, TypedDict

from ieegfm.errors import InputError

MANIFEST = "manifest.json"
SIZES = "sizes.json"
SPLITS = ("train", "val", "test")


class ShardEntry(TypedDict, total=False):
    """One tar: ``name`` (relative to the folder), ``n_samples`` (chunks), ``n_windows`` (non-overlapping windows),
    ``chunk_lengths`` (samples of each chunk, in order), ``sha256``, ``bytes``."""

    name: str
    n_samples: int
    n_windows: int
    chunk_lengths: list[int]
    sha256: str
    bytes: int


class SplitStats(TypedDict):
    """Per split: ``hours`` packed, ``daytime_hours``, ``by_day`` (day index -> hours), ``n_chunks``, ``n_windows``,
    ``blocks`` (ids)."""

    hours: float
    daytime_hours: float
    by_day: dict[str, float]
    n_chunks: int
    n_windows: int
    blocks: list[str]


class SubjectEntry(TypedDict, total=False):
    """Per subject: ``index`` (the encoder's subject layer), ``ch_names`` (after the montage), ``n_chans``,
    ``picks`` (file channels used), ``dropped`` (name -> reason), ``scaler`` (robust scaler state)."""

    index: int
    ch_names: list[str]
    n_chans: int
    picks: list[str]
    dropped: dict[str, str]
    scaler: dict


class Manifest(TypedDict, total=False):
    """``manifest.json``. Keys every reader may rely on are checked by :func:`read_manifest` (:data:`REQUIRED`);
    the others are provenance (``blocks``, ``config``, ``skipped``, ``length_mismatches``, ``anonymized``…)."""

    ieegfm_version: str
    format: dict[str, Any]
    sfreq: float  # Hz, brain samples
    audio_sfreq: float  # Hz, stored audio bins (= sfreq unless packed with audio.pool_s)
    timezone: str
    window_s: float
    chunk_s: float
    guard_s: float
    n_features: int  # audio features per frame (0: brain-only shards)
    subjects: dict[str, SubjectEntry]
    n_chans_max: int
    audio_scaler: dict | None
    scaling: dict[str, Any]
    splits: dict[str, SplitStats]
    shards: dict[str, list[ShardEntry]]
    blocks: dict[str, dict[str, Any]]
    skipped: dict[str, str]
    anonymized: dict[str, Any]
    length_mismatches: list[dict[str, Any]]
    empty_splits: list[str]
    channels_from: dict | None
    imported_from: dict[str, Any]
    subset: dict[str, Any]
    control: dict[str, Any]
    config: dict[str, Any]
    audio: dict[str, Any] | None


#: key -> what a reader needs it to be
REQUIRED = {
    "sfreq": "a positive number (Hz)",
    "window_s": "a positive number (s)",
    "n_chans_max": "a non-negative integer",
    "n_features": "a non-negative integer",
    "subjects": "an object of subjects, each with an integer index and a list of channel names",
    "shards": "an object of splits, each a list of shards with a name, n_samples and n_windows",
    "splits": "an object of split statistics",
}


def new_split_stats() -> SplitStats:
    """Empty statistics of a split, filled chunk by chunk with :func:`count_chunk`."""
    return {"hours": 0.0, "daytime_hours": 0.0, "by_day": {}, "n_chunks": 0, "n_windows": 0, "blocks": []}


def count_chunk(stats: SplitStats, hours: float, n_windows: int, day: int = 0, daytime: bool | None = None) -> None:
    """Add one chunk of ``hours`` and ``n_windows`` windows, recorded on local ``day`` (daytime or not; None:
    no clock, as for imported trials) to a split's statistics."""
    stats["hours"] += hours
    if daytime:
        stats["daytime_hours"] += hours
    if daytime is not None:
        stats["by_day"][str(day)] = stats["by_day"].get(str(day), 0.0) + hours
    stats["n_chunks"] += 1
    stats["n_windows"] += n_windows


def _problem(m: dict) -> str | None:
    """The first key of :data:`REQUIRED` that is missing or not what readers need, or None."""

    def number(v, positive=True) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    checks = {
        "sfreq": lambda v: number(v),
        "window_s": lambda v: number(v),
        "n_chans_max": count,
        "n_features": count,
        "subjects": lambda v: (
            isinstance(v, dict)
            and all(
                isinstance(s, dict) and count(s.get("index")) and isinstance(s.get("ch_names"), list)
                for s in v.values()
            )
        ),
        "shards": lambda v: (
            isinstance(v, dict)
            and all(
                isinstance(entries, list)
                and all(
                    isinstance(e, dict)
                    and isinstance(e.get("name"), str)
                    and count(e.get("n_samples"))
                    and count(e.get("n_windows"))
                    for e in entries
                )
                for entries in v.values()
            )
        ),
        "splits": lambda v: isinstance(v, dict),
    }
    for key, ok in checks.items():
        if key not in m or not ok(m[key]):
            return key
    return None


def read_manifest(folder: str | Path) -> Manifest:
    """Read and check ``<folder>/manifest.json``.

    Parameters
    ----------
    folder : str | Path
        A shard folder.

    Returns
    -------
    manifest : Manifest

    Raises
    ------
    InputError
        No manifest (not a shard folder, or a pack that did not finish), not JSON (a damaged copy), or a key of
        :data:`REQUIRED` missing or malformed (names the key and what was expected).
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(
            f"shards={folder}: no {MANIFEST}; expected a folder written by `ieegfm pack` (one that finished)"
        )
    try:
        m = json.loads(path.read_bytes())
    except (ValueError, OSError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"shards={folder}: {MANIFEST} is not readable JSON ({msg}); a damaged copy?") from None
    if not isinstance(m, dict):
        raise InputError(f"shards={folder}: {MANIFEST} holds a {type(m).__name__}; expected an object")
    bad = _problem(m)
    if bad is not None:
        shown = json.dumps(m.get(bad), default=str)[:80] if bad in m else "missing"
        raise InputError(f"shards={folder}: {MANIFEST} key {bad!r} is {shown}; expected {REQUIRED[bad]}")
    return m  # type: ignore[return-value]


def write_json_atomic(obj, path: str | Path, sort_keys: bool = True) -> None:
    """Write ``obj`` as JSON (indent 1; non-JSON values as ``str``) to ``path`` through a temporary name and a
    rename, so a crash never leaves a partial file under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=sort_keys, default=str))
    os.replace(tmp, path)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``sizes.json`` and then ``manifest.json`` into ``folder``, each atomically (temporary name, rename).

    Returns
    -------
    path : Path
        ``<folder>/manifest.json``.

    Raises
    ------
    InputError
        The manifest misses or malforms a key of :data:`REQUIRED` (a bug in its writer; nothing is written).
    """
    folder = Path(folder)
    bad = _problem(manifest)  # type: ignore[arg-type]
    if bad is not None:
        raise InputError(f"{folder}: refusing to write a manifest whose key {bad!r} is not {REQUIRED[bad]}")
    sizes = {e["name"]: e["n_samples"] for entries in manifest["shards"].values() for e in entries}
    write_json_atomic(sizes, folder / SIZES)
    write_json_atomic(manifest, folder / MANIFEST)
    return folder / MANIFEST


def withdraw_manifest(folder: str | Path) -> None:
    """Remove ``manifest.json`` and ``sizes.json`` (before a rewrite: the folder stops looking finished)."""
    for name in (MANIFEST, SIZES):
        (Path(folder) / name).unlink(missing_ok=True)


def verify_shards(folder: str | Path) -> dict:
    """Check every shard a manifest lists: present, of the recorded size, of the recorded sha256.

    Damage inside a shard's arrays is invisible while reading (only tar headers carry checksums): run this after
    copying shards, or when training reports corrupt shards.

    Returns
    -------
    report : dict
        ``{"shards": n, "bytes": total, "ok": n_ok}`` when every shard is intact.

    Raises
    ------
    InputError
        A damaged manifest (see :func:`read_manifest`), or shards missing or damaged (how many, and the first ones
        with what is wrong).
    """
    from ieegfm.io.checksum import sha256_file

    m = read_manifest(folder)
    bad, n, total = [], 0, 0
    for entries in m["shards"].values():
        for e in entries:
            n += 1
            path = Path(folder) / e["name"]
            if not path.is_file():
                bad.append(f"{e['name']}: missing")
                continue
            size = path.stat().st_size
            total += size
            if "bytes" in e and size != e["bytes"]:
                bad.append(f"{e['name']}: {size} bytes, not {e['bytes']}")
            elif "sha256" in e and sha256_file(path) != e["sha256"]:
                bad.append(f"{e['name']}: sha256 differs from the manifest's")
    if bad:
        raise InputError(
            f"shards={folder}: {len(bad)} of {n} shard(s) damaged or missing ({'; '.join(bad[:3])}"
            f"{f'; and {len(bad) - 3} more' if len(bad) > 3 else ''}); copy them again or repack"
        )
    return {"shards": n, "bytes": total, "ok": n}
