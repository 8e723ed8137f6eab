"""The mismatched-pairs control: brain blocks paired with the audio of *other* blocks of the same subject.

Retrieval among the windows of several blocks can be won by telling blocks apart (slow drifts, gains, the
recording day) rather than by decoding sound. Pairing each brain block with another block's audio (a fixed
derangement of the subject's blocks in recording order: block k gets the audio of block k + 1, the last the
first's) removes every brain–audio coupling but keeps each block's identity on both sides, so a model trained and
evaluated on such pairs measures the shortcut alone: its within-block rank must sit at chance (0.5) and its
global rank shows how much block identity alone is worth on the user's data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ieegfm.data.tar import decode_sample, tar_samples
from ieegfm.errors import InputError
from ieegfm.io.manifest import SPLITS, Manifest, read_manifest, write_manifest
from ieegfm.shards.cohort import wait_for_manifest
from ieegfm.shards.writer import ShardWriter

logger = logging.getLogger(__name__)


def _samples(root: Path, manifest: Manifest):
    for sp in SPLITS:
        for entry in manifest.entries(sp):
            for s in tar_samples(iter([{"url": str(root / entry.name)}])):
                yield sp, decode_sample(s)


def block_derangement(blocks: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Block -> the block whose audio it gets: the next of the same subject in recording order (cyclic).

    Parameters
    ----------
    blocks : dict
        Block id -> ``(subject, start_time)`` (ISO 8601, so that the strings sort in time order).

    Raises
    ------
    InputError
        A subject with fewer than 2 blocks (no other block to take audio from).
    """
    by_subject: dict[str, list[tuple[str, str]]] = {}
    for block, (subject, start) in blocks.items():
        by_subject.setdefault(subject, []).append((start, block))
    pairs = {}
    for subject, own in sorted(by_subject.items()):
        if len(own) < 2:
            raise InputError(f"control=mismatched: subject {subject!r} has {len(own)} block; needs at least 2")
        names = [b for _, b in sorted(own)]
        pairs.update({a: b for a, b in zip(names, names[1:] + names[:1])})
    return pairs


def mismatched_shards(src: str | Path, dst: str | Path, window_n: int) -> Path:
    """Write a copy of a shard set whose audio comes from another block (see the module docstring).

    The ``k``-th chunk of block A keeps its brain data and gets the audio of the ``k``-th chunk (cyclically) of
    the block paired with A, both cut to the shorter length in whole windows. Splits, keys and metadata stay those
    of A (each sample's JSON adds ``audio_from``). Two passes over the shards; the audio is held in a memory-mapped
    work file, never in memory. Reused when ``dst`` already holds the control of the same source manifest.

    Parameters
    ----------
    src : str | Path
        Shards written by ``ieegfm pack``.
    dst : str | Path
        Output folder (``manifest.json`` gains ``control``).
    window_n : int
        Window length (samples): chunks are cut to whole windows.

    Returns
    -------
    dst : Path

    Raises
    ------
    InputError
        No manifest; a subject with a single block.
    """
    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    source_sha = hashlib.sha256((src / "manifest.json").read_bytes()).hexdigest()
    done = dst / "manifest.json"
    if done.is_file() and json.loads(done.read_text()).get("control", {}).get("source_manifest_sha256") == source_sha:
        return dst
    step = manifest.audio_step
    dst.mkdir(parents=True, exist_ok=True)
    lengths = [n for sp in SPLITS for e in manifest.entries(sp) for n in e.chunk_lengths or ()]
    work = dst / ".audio.npy"
    audio_all = np.lib.format.open_memmap(
        work, mode="w+", dtype=np.float16, shape=(manifest.n_features, sum(lengths) // step)
    )
    chunks: dict[str, list[tuple[int, int, str]]] = {}  # block -> [(offset, length in audio values, key)]
    blocks: dict[str, tuple[str, str]] = {}
    offset = 0
    for _, s in _samples(src, manifest):  # pass 1: every chunk's audio into the work file
        n = s["audio"].shape[1]
        audio_all[:, offset : offset + n] = s["audio"]
        chunks.setdefault(s["meta"]["block"], []).append((offset, n, s["__key__"]))
        blocks.setdefault(s["meta"]["block"], (s["meta"]["subject"], s["meta"]["start_time"]))
        offset += n
    pairs = block_derangement(blocks)
    seen: dict[str, int] = {}
    writers: dict[str, ShardWriter] = {}
    for sp, s in _samples(src, manifest):  # pass 2: brain of A, audio of its partner
        block = s["meta"]["block"]
        k = seen.get(block, 0)
        seen[block] = k + 1
        partner = chunks[pairs[block]]
        p_off, p_n, p_key = partner[k % len(partner)]
        n = min(s["brain"].shape[1], p_n * step) // window_n * window_n
        if n < window_n:
            continue
        meta = {**s["meta"], "audio_from": {"block": pairs[block], "key": p_key}}
        writer = writers.setdefault(sp, ShardWriter(dst, sp, max(e.n_samples for e in manifest.entries(sp))))
        writer.write(
            s["__key__"],
            {
                "brain.npy": np.ascontiguousarray(s["brain"][:, :n]),
                "audio.npy": np.ascontiguousarray(audio_all[:, p_off : p_off + n // step]),
                "json": meta,
            },
            n_windows=n // window_n,
            n_times=n,
        )
    del audio_all
    os.remove(work)
    out = manifest.to_dict()
    out["shards"] = {sp: w.close() for sp, w in writers.items()}
    out["control"] = {
        "kind": "mismatched",
        "rule": "brain of block A with the audio of the next block of the same subject in recording order (cyclic)",
        "pairs": pairs,
        "source": str(src),
        "source_manifest_sha256": source_sha,
    }
    write_manifest(dst, out)
    logger.info("control=mismatched: %s (%d blocks re-paired) -> %s", src, len(pairs), dst)
    return dst


def control_shards(
    control: str, shards: str | Path, out: Path, window_n: int, rank: int, timeout_s: float = 3600
) -> Path:
    """The shards a pretraining run reads under ``control``: the given ones, or their mismatched copy under
    ``out/mismatched_shards`` (written by global rank 0; the other ranks wait for its manifest)."""
    if control == "none":
        return Path(shards)
    dst = out / "mismatched_shards"
    if rank == 0:
        return mismatched_shards(shards, dst, window_n)
    return wait_for_manifest(dst, rank, timeout_s)
