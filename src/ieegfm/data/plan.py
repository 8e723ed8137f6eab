"""The training epoch: which windows each (rank, worker) stream reads, in batches of which sizes.

:class:`EpochPlanner` computes the plan from the manifest alone (every window exactly once per epoch, equal batch
counts per rank); :class:`PlannedShardList` / :class:`ResampledShardList` feed shards to a stream and
:class:`EpochBatches` ends a worker's epoch at its quota (and fast-forwards after a resume). Shuffles are seeded by
``(seed, epoch, rank, worker)``; the epoch lives in a :class:`SharedEpoch` that the training loop advances, so
workers that are re-created every epoch still reshuffle (the open_clip recipe).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import random
from collections.abc import Iterator

import numpy as np
import torch
import webdataset as wds

from ieegfm.data.balance import balance_counts
from ieegfm.errors import InputError

logger = logging.getLogger(__name__)


class SharedEpoch:
    """An epoch counter shared between the main process and DataLoader workers."""

    def __init__(self, epoch: int = 0) -> None:
        self.value = mp.Value("i", epoch)

    def set_value(self, epoch: int) -> None:
        """Set the epoch (called at the start of every training epoch)."""
        self.value.value = epoch

    def get_value(self) -> int:
        """The current epoch."""
        return self.value.value


class ResumePosition:
    """Where a resumed run left off: ``epoch`` and the training ``batches`` already done in it (all workers).

    Shared with DataLoader workers; :class:`EpochBatches` fast-forwards past those batches once, in that epoch.
    """

    def __init__(self) -> None:
        self.epoch = mp.Value("i", -1)
        self.batches = mp.Value("i", 0)

    def set(self, epoch: int, batches: int) -> None:
        """Record the position (from a checkpoint)."""
        self.epoch.value, self.batches.value = int(epoch), int(batches)


def rank_and_worker() -> tuple[int, int, int, int]:
    """``(rank, world_size, worker, num_workers)`` of the calling process."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank, world, worker, workers


def batch_sizes(n_windows: int, n_batches: int, batch_size: int) -> list[int]:
    """Split ``n_windows`` into exactly ``n_batches`` non-empty batches, full ones (``batch_size``) first.

    As many batches as possible are full; the windows left over are spread evenly over the last batches.

    Parameters
    ----------
    n_windows, n_batches, batch_size : int
        Windows to split, batches wanted, windows in a full batch.

    Returns
    -------
    list of int
        ``n_batches`` sizes in ``[1, batch_size]`` summing to ``n_windows``, non-increasing.

    Raises
    ------
    ValueError
        If ``n_windows`` is not in ``[n_batches, n_batches * batch_size]``.
    """
    if not n_batches <= n_windows <= n_batches * batch_size:
        raise ValueError(f"cannot split {n_windows} windows into {n_batches} batches of 1..{batch_size}")
    full = n_batches if batch_size == 1 else min(n_batches, (n_windows - n_batches) // (batch_size - 1))
    rest = n_batches - full
    if rest == 0:
        return [batch_size] * full
    q, extra = divmod(n_windows - full * batch_size, rest)
    return [batch_size] * full + [q + 1] * extra + [q] * (rest - extra)


class EpochPlanner:
    """Which windows each (rank, worker) stream reads in an epoch, and in batches of which sizes.

    Computed identically, without reading any data, in every process from the manifest's per-chunk lengths,
    ``seed`` and the epoch. Each chunk gets a random window offset in ``[0, window_n)``, which fixes its
    non-overlapping windows (the epoch's samples, ``N`` in all). The shards are shuffled, their windows laid
    end to end, and the sequence is cut into contiguous ranges: one per rank (sizes differing by at most one),
    split again between the rank's DataLoader workers. Every rank runs the same number of batches,
    ``ceil(N / (world_size * batch_size))``: full batches first, the few windows left over spread over the
    last batches (ranks whose batches differ in size are fine for the losses, see
    :func:`~ieegfm.losses.clip.gather_batches`). So every window is used exactly once per epoch, by exactly one
    rank and worker, no rank waits for another (equal step counts), and no window is dropped or repeated; the
    price is that a shard straddling two streams' ranges is opened by both, each reading only its own chunks
    (at most ``world_size * num_workers - 1`` extra shard openings per epoch).

    Parameters
    ----------
    chunk_lengths : list of sequence of int
        Per shard, the samples of each chunk in tar order (:attr:`ieegfm.io.manifest.ShardEntry.chunk_lengths`).
    urls : list of str
        Their paths.
    window_n : int
        Window length (samples).
    batch_size : int
        Windows per full batch (per rank).
    seed : int
    step : int
        Window offsets are multiples of ``step`` samples (the shards' audio bin, ``ieegfm pack audio.pool_s``).
    subjects : list of sequence of str, optional
        Per shard, the subject of each chunk: the epoch is balanced across subjects with ``alpha``
        (:mod:`ieegfm.data.balance`; each window still at most once); None or ``alpha=1``: every window once.
    alpha : float
        ``data.subject_alpha``: subject shares ``∝ windows ** alpha``.

    Notes
    -----
    This is the exactly-once contract of ``DistributedSampler(drop_last=False)`` without its padding by
    repeated samples: uneven final batches replace both dropping and repeating.
    """

    def __init__(
        self,
        chunk_lengths: list,
        urls: list[str],
        window_n: int,
        batch_size: int,
        seed: int,
        step: int = 1,
        subjects: list | None = None,
        alpha: float = 1.0,
    ) -> None:
        self.lengths = [np.asarray(c, dtype=np.int64) for c in chunk_lengths]
        self.urls, self.window_n, self.batch_size, self.seed = list(urls), window_n, batch_size, seed
        self.step = step
        self.subjects, self.alpha = subjects, float(alpha)
        self._cache: dict = {}

    def plan(self, epoch: int, world: int, workers: int) -> dict:
        """The epoch's plan.

        Returns
        -------
        dict
            ``offsets``: per shard, the window offset of each chunk (int arrays); ``counts``: per shard,
            windows per chunk; ``n_windows``: ``N``; ``batches``: batches per rank (0 when the plan is
            infeasible: fewer windows than ranks, or ``batch_size`` 1 and ``N`` not a multiple of
            ``world_size``); ``bounds``: ``{(rank, worker): (first, stop)}``, the stream's range of the
            epoch's window sequence (its shards and chunk windows: :meth:`stream`); ``sizes``:
            ``{(rank, worker): [batch sizes]}``; ``quota``: ``{(rank, worker): number of batches}``;
            ``per_subject``: subject -> ``{"windows", "per_epoch"}`` (None without ``subjects``). Arrays,
            not per-chunk Python objects: every DataLoader worker holds the plan (a million chunks, about
            8,000 hours of 30-s chunks, take ~16 MB).
        """
        key = (epoch, world, workers)
        if key in self._cache:
            return self._cache[key]
        rng = np.random.default_rng([self.seed, epoch, 7919])
        w, size = self.window_n, self.batch_size
        offsets, counts = [], []
        for n in self.lengths:
            o = rng.integers(0, w // self.step, size=len(n)) * self.step
            o = np.minimum(o, np.maximum(n - w, 0) // self.step * self.step)
            offsets.append(o)
            counts.append(np.where(n >= w, (n - o) // w, 0))
        per_subject = None
        if self.subjects is not None:  # balanced across subjects (alpha 1: every window, nothing drawn)
            counts, per_subject = balance_counts(counts, self.subjects, self.alpha, rng)
        order = rng.permutation(len(self.lengths))
        totals = np.array([int(counts[i].sum()) for i in order], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(totals)])  # first global window of each shard, in reading order
        n_windows = int(starts[-1])
        batches = -(-n_windows // (world * size))
        if n_windows // world < batches:  # fewer windows than ranks (or batch_size 1 and world does not divide N)
            batches = 0
        bounds: dict = {}
        sizes: dict = {}
        for r in range(world):
            lo, hi = n_windows * r // world, n_windows * (r + 1) // world
            rank_sizes = batch_sizes(hi - lo, batches, size) if batches else []
            for k in range(workers):
                sizes[(r, k)] = rank_sizes[k::workers]
                n = sum(sizes[(r, k)])
                bounds[(r, k)] = (lo, lo + n)
                lo += n
        plan = {
            "offsets": offsets,
            "counts": counts,
            "order": order,
            "starts": starts,
            "n_windows": n_windows,
            "batches": batches,
            "bounds": bounds,
            "sizes": sizes,
            "quota": {s: len(v) for s, v in sizes.items()},
            "per_subject": per_subject,
        }
        self._cache = {key: plan}
        return plan

    @staticmethod
    def stream(plan: dict, rank: int, worker: int) -> list[dict]:
        """The shards a stream reads, in order, each with the (start, stop) window range of every chunk.

        Returns
        -------
        list of dict
            ``{"shard": index into the manifest's shard list, "takes": [(start, stop) per chunk]}``.
        """
        lo, hi = plan["bounds"][(rank, worker)]
        order, starts, counts = plan["order"], plan["starts"], plan["counts"]
        items = []
        if hi <= lo:
            return items
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        for j in range(first, len(order)):
            if starts[j] >= hi:
                break
            i = int(order[j])
            a, b = max(lo - starts[j], 0), min(hi - starts[j], starts[j + 1] - starts[j])
            if b <= a:
                continue
            c = counts[i]
            before = np.concatenate([[0], np.cumsum(c)[:-1]])
            take_lo = np.clip(a - before, 0, c)
            take_hi = np.clip(b - before, 0, c)
            items.append({"shard": i, "takes": list(zip(take_lo.tolist(), take_hi.tolist()))})
        return items


def taken_per_worker(quotas: list[int], done: int) -> list[int]:
    """Batches each worker had delivered after ``done`` batches of a DataLoader that takes from its workers in
    turn, skipping the exhausted ones (PyTorch's in-order iterable-dataset behaviour)."""
    taken = [0] * len(quotas)
    active = [i for i, q in enumerate(quotas) if q > 0]
    j = 0
    while done > 0 and active:
        i = active[j % len(active)]
        taken[i] += 1
        done -= 1
        if taken[i] >= quotas[i]:
            active.remove(i)
        else:
            j += 1
        if active:
            j %= len(active)
    return taken


class PlannedShardList(wds.PipelineStage):
    """This (rank, worker)'s shards of the epoch's :class:`EpochPlanner` plan, with each chunk's window offset
    and the range of its windows to take."""

    def __init__(self, planner: EpochPlanner, epoch: SharedEpoch) -> None:
        self.planner, self.epoch = planner, epoch

    def run(self) -> Iterator[dict]:
        rank, world, worker, workers = rank_and_worker()
        plan = self.planner.plan(self.epoch.get_value(), world, workers)
        for item in self.planner.stream(plan, rank, worker):
            i = item["shard"]
            yield {"url": self.planner.urls[i], "offsets": plan["offsets"][i].tolist(), "takes": item["takes"]}


class ResampledShardList(wds.PipelineStage):
    """Shards drawn with replacement forever, seeded by ``(seed, epoch, rank, worker)`` (``data.resampled``)."""

    def __init__(self, urls: list[str], seed: int, epoch: SharedEpoch) -> None:
        self.urls, self.seed, self.epoch = list(urls), seed, epoch

    def run(self) -> Iterator[dict]:
        rank, _, worker, _ = rank_and_worker()
        rng = random.Random(f"{self.seed}-{self.epoch.get_value()}-{rank}-{worker}")
        while True:
            yield {"url": rng.choice(self.urls)}


class EpochBatches(wds.PipelineStage):
    """End a worker's epoch after its batch quota and, after a resume, skip the batches already trained on.

    The quota is ``n_batches``, or the worker's share of an :class:`EpochPlanner` plan. The DataLoader takes
    batches from its workers in turn, skipping exhausted ones, so after a resume at ``k`` done batches each worker
    skips the batches it had delivered (:func:`taken_per_worker`). The stream is deterministic given
    ``(seed, epoch, rank, worker)``, so the resumed run sees exactly the batches the uninterrupted run would have
    seen.
    """

    def __init__(
        self, n_batches: int, epoch: SharedEpoch, resume: ResumePosition, planner: EpochPlanner | None = None
    ) -> None:
        self.n_batches, self.epoch, self.resume, self.planner = n_batches, epoch, resume, planner

    def run(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, world, worker, workers = rank_and_worker()
        n_batches = self.n_batches
        quotas = [n_batches] * workers
        if self.planner is not None:
            quota = self.planner.plan(self.epoch.get_value(), world, workers)["quota"]
            quotas = [quota[(rank, k)] for k in range(workers)]
            n_batches = quotas[worker]
        skip = 0
        if self.resume.epoch.value == self.epoch.get_value():
            skip = taken_per_worker(quotas, self.resume.batches.value)[worker]
        produced, last = 0, None
        for batch in src:
            if produced >= n_batches:
                return
            if produced >= skip:
                yield batch
            produced, last = produced + 1, batch
        if produced < n_batches:  # a corrupt shard left the stream short: keep every rank in step
            if last is None:
                raise InputError(
                    f"no training batch could be read this epoch (rank {rank}, worker {worker}): every training "
                    "shard it was given is corrupt (see the warnings above); expected shards whose sha256 matches "
                    "manifest.json (repack, or copy them again)"
                )
            logger.warning(
                "rank %d worker %d: stream ran %d batch(es) short (corrupt shards?); repeating its "
                "last batch so that all ranks run the same number of steps",
                rank,
                worker,
                n_batches - produced,
            )
            for i in range(produced, n_batches):
                if i >= skip:
                    yield last
