"""Several packs read as one: a cohort of patients (or hospitals), each packed on its own, pretrained together.

A cohort is a folder with its own ``manifest.json`` whose shard entries point at the packs' tars (relative paths,
as the subsets of :mod:`ieegfm.shards.subset`): it copies no data, and packing one more patient never touches
the shards of the others, so a cohort packs as one ``ieegfm pack`` per patient, in parallel. Subjects are
identified by their label across packs and numbered in the order the packs are given; the packs must agree on
what a window is (brain sampling rate, window length) and on the audio targets (features, their parameters).
Each pack keeps its own scalers (the brain's per subject, the audio's per pack).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ieegfm.errors import InputError
from ieegfm.io.checksum import sha256_file
from ieegfm.io.manifest import Manifest, read_manifest, write_manifest

#: Manifest keys every pack of a cohort must share: the window geometry and the audio targets.
SHARED_KEYS = ("sfreq", "window_s", "audio_sfreq", "n_features")
#: Keys of the ``audio`` description that are properties of the targets (not of one pack's run).
AUDIO_KEYS = ("features", "model", "layer", "n_mels", "n_fft", "hop", "f_min", "f_max", "sfreq", "pool_s")


def pack_folders(shards) -> list[Path]:
    """The pack folders named by a ``shards`` value.

    Parameters
    ----------
    shards : str | Path | sequence of str
        One folder; a list of folders (``shards=[DIR_A,DIR_B]``); or a text file with one folder a line (blank
        lines and ``#`` comments skipped; relative paths from the file's folder).

    Returns
    -------
    folders : list of Path

    Raises
    ------
    InputError
        An empty list or file, or a folder named twice.
    """
    if isinstance(shards, (str, os.PathLike)):
        path = Path(shards)
        if path.is_file():
            lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
            folders = [(path.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines if ln]
            if not folders:
                raise InputError(f"shards={path}: the file names no pack folder; expected one folder a line")
        else:
            folders = [path]
    else:
        folders = [Path(str(s)) for s in shards]
        if not folders:
            raise InputError("shards=[]: expected at least one pack folder")
    seen: dict[Path, Path] = {}
    for f in folders:
        key = f.resolve()
        if key in seen:
            raise InputError(f"shards: the pack {f} is named twice")
        seen[key] = f
    return folders


def _audio_targets(m: Manifest) -> dict:
    return {k: m.audio.get(k) for k in AUDIO_KEYS if k in m.audio} if m.audio else {}


def check_packs(packs: list[Path]) -> list[Manifest]:
    """Read the packs' manifests and check they can be read as one.

    Raises
    ------
    InputError
        A pack without a manifest; packs that differ in a :data:`SHARED_KEYS` value or their audio targets; a
        subject label in two packs with other channels (names both packs).
    """
    manifests = [read_manifest(p) for p in packs]
    first, m0 = packs[0], manifests[0]
    owner: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for path, m in zip(packs, manifests, strict=True):
        for key in SHARED_KEYS:
            if getattr(m, key) != getattr(m0, key):
                raise InputError(
                    f"shards={path}: {key}={getattr(m, key)} but {getattr(m0, key)} in {first}; the packs of one "
                    "pretraining must share the window geometry and the audio targets (pack them with one config)"
                )
        if _audio_targets(m) != _audio_targets(m0):
            raise InputError(
                f"shards={path}: audio targets {_audio_targets(m)} but {_audio_targets(m0)} in {first}; the packs "
                "of one pretraining must share the audio targets"
            )
        for label, s in m.subjects.items():
            if label in owner and owner[label][1] != s.ch_names:
                raise InputError(
                    f"shards={path}: subject {label!r} is also in {owner[label][0]} with other channels "
                    f"({len(s.ch_names)} vs {len(owner[label][1])}); one label, one implant: relabel one of them"
                )
            owner.setdefault(label, (path, s.ch_names))
    return manifests


def write_cohort(packs: list[Path], dst: Path) -> Path:
    """Write the cohort of ``packs`` under ``dst`` (``dst/manifest.json``; no data copied).

    Parameters
    ----------
    packs : list of Path
        Pack folders (:func:`pack_folders`), two or more.
    dst : Path
        Folder of the cohort's manifest (created).

    Returns
    -------
    dst : Path

    Raises
    ------
    InputError
        See :func:`check_packs`.

    Notes
    -----
    Subject indices: the packs' subjects in pack order, a label seen before keeping its index. Splits: the packs'
    statistics added up. ``cohort`` records each pack's relative path, manifest sha256, subjects and hours per
    split; the pack config, scaling and time zone of each pack stay in its own manifest (``timezone`` is kept when
    all agree).
    """
    dst = Path(dst)
    manifests = check_packs(packs)
    dst.mkdir(parents=True, exist_ok=True)
    out = manifests[0].to_dict()
    subjects: dict[str, dict] = {}
    shards: dict[str, list[dict]] = {}
    splits: dict[str, dict] = {}
    blocks: dict = {}
    cohort = []
    for path, m in zip(packs, manifests, strict=True):
        raw = m.to_dict()
        rel = os.path.relpath(path.resolve(), dst.resolve())
        for label, s in raw["subjects"].items():
            if label not in subjects:
                subjects[label] = {**s, "index": len(subjects), "pack": rel}
        for sp, entries in raw["shards"].items():
            shards.setdefault(sp, []).extend({**e, "name": os.path.join(rel, e["name"])} for e in entries)
        for sp, st in raw["splits"].items():
            acc = splits.setdefault(sp, {"hours": 0.0, "daytime_hours": 0.0, "by_day": {}, "n_chunks": 0,
                                         "n_windows": 0, "blocks": []})  # fmt: skip
            for k in ("hours", "daytime_hours", "n_chunks", "n_windows"):
                acc[k] += st.get(k, 0)
            for day, h in st.get("by_day", {}).items():
                acc["by_day"][day] = acc["by_day"].get(day, 0.0) + h
            acc["blocks"] += list(st.get("blocks", ()))
        blocks.update(raw.get("blocks") or {})
        cohort.append(
            {
                "path": rel,
                "manifest_sha256": sha256_file(path / "manifest.json"),
                "subjects": list(raw["subjects"]),
                "hours": {sp: float(st.get("hours", 0.0)) for sp, st in raw["splits"].items()},
            }
        )
    zones = {m.timezone for m in manifests}
    out.update(
        subjects=subjects,
        n_chans_max=max(m.n_chans_max for m in manifests),
        shards=shards,
        splits=splits,
        blocks=blocks,
        timezone=zones.pop() if len(zones) == 1 else None,
        empty_splits=[sp for sp in ("train", "val", "test") if not shards.get(sp)],
        cohort={"packs": cohort},
        config={},
        scaling={"by": "pack", "rule": "each pack's own scaling (see its manifest)"},
        channels_from=None,
    )
    write_manifest(dst, out)
    return dst


def cohort_shards(shards, out: Path, rank: int, timeout_s: float = 3600) -> Path:
    """The folder a pretraining run reads: the one pack given, or the cohort of several written under
    ``out/cohort`` (by global rank 0; the other ranks wait for its manifest)."""
    packs = pack_folders(shards)
    if len(packs) == 1:
        return packs[0]
    dst = Path(out) / "cohort"
    if rank == 0:
        return write_cohort(packs, dst)
    return wait_for_manifest(dst, rank, timeout_s)


def wait_for_manifest(dst: Path, rank: int, timeout_s: float = 3600) -> Path:
    """Wait until rank 0 has written ``dst/manifest.json``; return ``dst``.

    Raises
    ------
    RuntimeError
        Not written within ``timeout_s``.
    """
    t0 = time.monotonic()
    while not (dst / "manifest.json").is_file():
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"rank {rank}: {dst}/manifest.json not written by rank 0 within {timeout_s:.0f} s")
        time.sleep(1.0)
    return dst
