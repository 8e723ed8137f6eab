"""Nested subsets of the training hours of a shard set, as views that copy no data (scaling-law sweeps).

A scaling sweep pretrains on 0.5, 1, 2, ... hours of each patient's training data and must change nothing else:
the validation and test windows stay those of the full set, and a smaller budget is a prefix of a larger one
(nested), so that a gain with hours is not a different sample of the recording. Chunks (the shards' samples, ~60 s)
are ordered per subject, in recording order (more days as the budget grows, as in the seed paper's scaling
analysis, arXiv 2512.15830) or in a seeded random order fixed for all budgets, and each subject keeps the shortest
prefix that holds the budget.

A subset is a folder with its own ``manifest.json`` whose shard entries point at the source tars (relative paths)
and whose training entries list the dropped chunks with length 0: the epoch planner
(:class:`ieegfm.data.plan.EpochPlanner`) gives them no windows and the tar reader seeks past them, so a subset
reads only its own chunks and copies no bytes. The manifest's ``subset`` records the request, the source and the
hours kept per subject; its ``splits.train`` the kept hours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ieegfm.config.enums import SUBSET_ORDERS
from ieegfm.data.tar import tar_members
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.checksum import sha256_file
from ieegfm.io.manifest import read_manifest, write_manifest

logger = logging.getLogger(__name__)

#: the budget that keeps every training chunk
ALL = "all"


@dataclass(frozen=True)
class Chunk:
    """One training chunk of a shard set: where it is and when it was recorded."""

    shard: int  # index into the manifest's train shards
    index: int  # position in that tar
    subject: str
    block: str
    start_time: dt.datetime
    hours: float
    n_windows: int
    day: int
    daytime: bool


def train_chunks(shards: str | Path, split: str = "train") -> list[Chunk]:
    """The chunks of a split (the training one by default) of a shard set, read from their JSON members only (the
    arrays are skipped by seeks).

    Raises
    ------
    InputError
        No manifest; a tar holding another number of chunks than its manifest entry lists.
    """
    root = Path(shards)
    manifest = read_manifest(root)
    sfreq, window_n = manifest.sfreq, manifest.window_n
    chunks = []
    for i, entry in enumerate(manifest.entries(split)):
        url = root / entry.name
        metas = [
            json.loads(bytes(data))
            for name, data in tar_members(str(url), want=lambda n: n.endswith(".json"))
            if data is not None
        ]
        lengths = entry.chunk_lengths or ()
        if len(metas) != len(lengths):
            raise InputError(f"{url}: {len(metas)} chunks, its manifest entry lists {len(lengths)}")
        for k, (meta, n) in enumerate(zip(metas, lengths)):
            chunks.append(
                Chunk(
                    shard=i,
                    index=k,
                    subject=meta["subject"],
                    block=meta["block"],
                    start_time=dt.datetime.fromisoformat(meta["start_time"]),
                    hours=n / sfreq / 3600,
                    n_windows=n // window_n,
                    day=int(meta["day"]),
                    daytime=bool(meta["daytime"]),
                )
            )
    return chunks


def parse_hours(value) -> float | str:
    """A budget of the hours grid: a positive number of hours per subject, or ``'all'``.

    Raises
    ------
    ConfigError
        Anything else.
    """
    if isinstance(value, str) and value.strip().lower() == ALL:
        return ALL
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"hours: {value!r} is not a number of hours or 'all'") from None
    if not np.isfinite(hours) or hours <= 0:
        raise ConfigError(f"hours: {value!r}: expected a positive number of hours per patient, or 'all'")
    return hours


def chunk_order(chunks: list[Chunk], order: str = "recording", seed: int = 0, daytime_only: bool = False) -> dict:
    """Subject -> its chunks in the order budgets take them (the same order for every budget: nested prefixes).

    Parameters
    ----------
    chunks : list of Chunk
    order : {'recording', 'random'}
        Recording order (start time), or a random permutation seeded by ``seed`` (and the subject).
    seed : int
    daytime_only : bool
        Keep only chunks recorded in daytime (08-22 h, the pack's local clock).

    Raises
    ------
    ConfigError
        Unknown order.
    """
    if order not in SUBSET_ORDERS:
        raise ConfigError(f"subset order={order!r}: expected one of {list(SUBSET_ORDERS)}")
    by_subject: dict[str, list[Chunk]] = {}
    for c in sorted(chunks, key=lambda c: (c.subject, c.start_time, c.shard, c.index)):
        if c.daytime or not daytime_only:
            by_subject.setdefault(c.subject, []).append(c)
    if order == "random":
        for s, own in by_subject.items():
            salt = int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "little")
            perm = np.random.default_rng([seed, salt, 104729]).permutation(len(own))
            by_subject[s] = [own[i] for i in perm]
    return by_subject


def nested_subset(
    ordered: dict[str, list[Chunk]], hours: float | str | dict[str, float], where: str = "shards"
) -> dict[str, list[Chunk]]:
    """Each subject's shortest prefix of ``ordered`` holding ``hours`` (all of it for ``'all'``; a dict gives each
    subject its own budget).

    A budget is met to within one chunk (the prefix may exceed it by less than one chunk's length).

    Raises
    ------
    InputError
        A subject holds fewer training hours than the budget (names the subject and both figures).
    """
    kept = {}
    budgets = hours if isinstance(hours, dict) else {}
    for s, own in ordered.items():
        total = sum(c.hours for c in own)
        hours = budgets.get(s, ALL) if budgets else hours
        if hours == ALL:
            kept[s] = list(own)
            continue
        if hours > total + 1e-9:
            raise InputError(
                f"{where}: hours={hours:g} per patient, but subject {s!r} has {total:.3f} h of training data; "
                "expected a grid within that (or 'all')"
            )
        cum = np.cumsum([c.hours for c in own])
        n = int(np.searchsorted(cum, hours - 1e-9)) + 1
        kept[s] = own[:n]
    return kept


def fraction_budgets(ordered: dict[str, list[Chunk]], fraction: float, where: str = "shards") -> dict[str, float]:
    """Subject -> ``fraction`` of its training hours.

    Raises
    ------
    ConfigError
        ``fraction`` outside (0, 1].
    InputError
        A budget shorter than the subject's first chunk in ``ordered`` (the subset would hold more than asked;
        names the subject, the budget and the chunk).
    """
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise ConfigError(f"task_fractions: {fraction:g} is outside (0, 1]")
    budgets = {}
    for s, own in ordered.items():
        total = sum(c.hours for c in own)
        budgets[s] = fraction * total
        if own and budgets[s] < own[0].hours * (1 - 1e-6):
            raise InputError(
                f"{where}: task fraction {fraction:g} of subject {s!r}'s {total * 3600:.0f} s of training data is "
                f"{budgets[s] * 3600:.0f} s, less than its first chunk ({own[0].hours * 3600:.0f} s); expected "
                "fractions that hold at least one chunk"
            )
    return budgets


def subset_view(
    shards: str | Path,
    dst: str | Path,
    hours: float | str | dict[str, float],
    order: str = "recording",
    seed: int = 0,
    daytime_only: bool = False,
    fraction: float | None = None,
    subjects: list[str] | None = None,
) -> Path:
    """Write (or reuse) the view of ``shards`` that trains on a nested subset of ``hours`` per subject (or of a
    ``fraction`` of each subject's training hours), optionally of some of its subjects only.

    Parameters
    ----------
    shards : str | Path
        Shards written by ``ieegfm pack`` (or a cohort of packs).
    dst : str | Path
        Folder of the view (``manifest.json`` only; the tars stay where they are).
    hours : float | 'all' | dict
        Training hours per subject (a dict: each subject its own budget; ignored when ``fraction`` is given).
    order, seed, daytime_only
        See :func:`chunk_order`.
    fraction : float, optional
        Keep this fraction, in (0, 1], of each subject's training hours instead (label-efficiency curves):
        in recording order, whole blocks first, the last one cut to a contiguous stretch of chunks.
    subjects : list of str, optional
        Keep only these subjects (scaling over patients): the others' chunks are dropped from every split (their
        validation and test windows too: a subject the view does not train on is not scored), and the view's
        manifest lists only the kept subjects, numbered from 0 in the source's order.

    Returns
    -------
    dst : Path

    Raises
    ------
    InputError
        No manifest; more hours asked for than a subject holds; a fraction whose budget is shorter than the
        subject's first training chunk (it would keep more than asked); a subject the shards do not hold.
    """
    src, dst = Path(shards), Path(dst)
    manifest = read_manifest(src)
    if isinstance(hours, dict):
        hours = {str(k): float(v) for k, v in sorted(hours.items())}
    else:
        hours = parse_hours(hours) if fraction is None else ALL
    if subjects is not None:
        unknown = [s for s in subjects if s not in manifest.subjects]
        if unknown or not subjects:
            raise InputError(
                f"shards={src}: subjects {list(subjects)}; expected some of the shards' {sorted(manifest.subjects)}"
            )
        subjects = [s for s in manifest.subjects if s in subjects]  # the source's order
    request = {
        "hours": hours,
        "fraction": None if fraction is None else float(fraction),
        "order": order,
        "seed": int(seed) if order == "random" else None,
        "daytime_only": bool(daytime_only),
        "subjects": subjects,
        "source": os.path.relpath(src.resolve(), dst.resolve()),
        "source_manifest_sha256": sha256_file(src / "manifest.json"),
    }
    done = dst / "manifest.json"
    if done.is_file():
        old = json.loads(done.read_text()).get("subset", {})
        if {k: old.get(k) for k in request} == request:
            return dst
    chunks = train_chunks(src)
    if subjects is not None:
        chunks = [c for c in chunks if c.subject in subjects]
    ordered = chunk_order(chunks, order, seed, daytime_only)
    budget = hours if fraction is None else fraction_budgets(ordered, fraction, where=f"shards={src}")
    kept = nested_subset(ordered, budget, where=f"shards={src}")
    keep = {(c.shard, c.index) for own in kept.values() for c in own}
    rel = os.path.relpath(src.resolve(), dst.resolve())
    out = manifest.to_dict()
    window_n = manifest.window_n
    for sp, entries in out["shards"].items():
        held = None  # (shard, chunk) of the kept subjects in this evaluation split
        if sp != "train" and subjects is not None:
            own = train_chunks(src, sp)  # the tars' JSON members, read once per split
            held = {(c.shard, c.index) for c in own if c.subject in subjects}
        for i, e in enumerate(entries):
            e["name"] = os.path.join(rel, e["name"])
            if sp == "train":
                e["chunk_lengths"] = [n if (i, k) in keep else 0 for k, n in enumerate(e["chunk_lengths"])]
            elif held is not None:
                e["chunk_lengths"] = [n if (i, k) in held else 0 for k, n in enumerate(e["chunk_lengths"] or ())]
            else:
                continue
            e["n_windows"] = sum(n // window_n for n in e["chunk_lengths"])
        if held is not None:
            out["shards"][sp] = [e for e in entries if e["n_windows"] > 0]
            out.setdefault("splits", {})[sp] = {
                **out.get("splits", {}).get(sp, {}),
                **_stats(own, held),
            }
    stats = _stats(chunks, keep)
    out.setdefault("splits", {})["train"] = {**out.get("splits", {}).get("train", {}), **stats}
    if subjects is not None:
        out["subjects"] = {s: {**out["subjects"][s], "index": k} for k, s in enumerate(subjects)}
        out["n_chans_max"] = max(len(out["subjects"][s]["ch_names"]) for s in subjects)
    out["subset"] = {
        **request,
        "hours_per_subject": {s: sum(c.hours for c in own) for s, own in kept.items()},
        "available_hours_per_subject": {
            s: sum(c.hours for c in own) for s, own in chunk_order(chunks, order, seed, daytime_only).items()
        },
        "rule": "per subject, the shortest prefix of the training chunks (in `order`) holding `hours` (or "
        "`fraction` of its training hours); validation and test unchanged"
        + ("; only `subjects` kept, in every split" if subjects is not None else ""),
    }
    dst.mkdir(parents=True, exist_ok=True)
    write_manifest(dst, out)
    logger.info(
        "subset %s: %s h per subject (%s) of %s",
        dst,
        ", ".join(f"{s} {h:.2f}" for s, h in out["subset"]["hours_per_subject"].items()),
        order,
        src,
    )
    return dst


def _stats(chunks: list[Chunk], keep: set) -> dict:
    """A split's statistics (``splits.<split>`` of a manifest) over the chunks whose (shard, index) is kept."""
    stats = {"hours": 0.0, "daytime_hours": 0.0, "by_day": {}, "n_chunks": 0, "n_windows": 0, "blocks": []}
    for c in sorted(chunks, key=lambda c: (c.shard, c.index)):
        if (c.shard, c.index) not in keep:
            continue
        stats["hours"] += c.hours
        stats["daytime_hours"] += c.hours if c.daytime else 0.0
        stats["by_day"][str(c.day)] = stats["by_day"].get(str(c.day), 0.0) + c.hours
        stats["n_chunks"] += 1
        stats["n_windows"] += c.n_windows
        if c.block not in stats["blocks"]:
            stats["blocks"].append(c.block)
    return stats
