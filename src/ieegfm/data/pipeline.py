"""WebDataset stages that turn shard samples (contiguous chunks) into training windows.

Stages are module-level callables (picklable for DataLoader workers), never lambdas. Shuffles are seeded by
``(seed, epoch, rank, worker)``; the epoch lives in a :class:`SharedEpoch` that the training loop advances, so
workers that are re-created every epoch still reshuffle (the open_clip recipe).
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing as mp
import random
import re
import tarfile
from collections.abc import Iterator

import numpy as np
import torch
import webdataset as wds

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


class CorruptCounter:
    """Handler for corrupt samples: log, count and continue (``handler=`` of WebDataset stages)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: Exception) -> bool:
        self.count += 1
        logger.warning("skipping corrupt sample (%d so far): %r", self.count, exn)
        return True


class EpochPlanner:
    """Which shards, window offsets and how many batches each (rank, worker) stream gets in an epoch.

    Computed identically, without reading any data, in every process from the manifest's per-chunk lengths,
    ``seed`` and the epoch: each chunk gets a random window offset in ``[0, window_n)`` (its window count follows);
    shards, in an order shuffled per epoch, go to the ``world_size * num_workers`` streams, largest first to the
    least loaded stream (balanced window totals); each stream's batch quota is ``floor(windows / batch_size)``,
    lowered on the richer ranks until every rank has the same number of batches (uneven ranks hang DDP). So in
    one epoch every training window is used at most once, by exactly one rank and worker, and the windows left
    out (the streams' incomplete last batches and the rank balancing) are fewer than about
    ``world_size * num_workers * batch_size`` plus one shard's windows: the exactly-once guarantee of
    ``DistributedSampler(drop_last=True)``, at window level, without any rank reading another's shards.

    Parameters
    ----------
    shards : list of dict
        Manifest shard entries with ``name`` and ``chunk_lengths``; ``urls`` gives their paths.
    urls : list of str
    window_n, batch_size, seed : int
    """

    def __init__(self, shards: list[dict], urls: list[str], window_n: int, batch_size: int, seed: int) -> None:
        self.lengths = [list(s["chunk_lengths"]) for s in shards]
        self.urls, self.window_n, self.batch_size, self.seed = list(urls), window_n, batch_size, seed
        self._cache: dict = {}

    def plan(self, epoch: int, world: int, workers: int) -> dict:
        """``{"offsets": per-shard offset lists, "streams": {(rank, worker): shard indices}, "quota": {...}}``."""
        key = (epoch, world, workers)
        if key in self._cache:
            return self._cache[key]
        rng = np.random.default_rng([self.seed, epoch, 7919])
        w = self.window_n
        offsets, counts = [], []
        for lengths in self.lengths:
            n = np.asarray(lengths, dtype=np.int64)
            o = np.minimum(rng.integers(0, w, size=len(n)), np.maximum(n - w, 0))
            offsets.append(o.tolist())
            counts.append(int(np.where(n >= w, (n - o) // w, 0).sum()))
        order = rng.permutation(len(self.lengths))
        order = sorted(order, key=lambda i: -counts[i])  # stable: ties keep the shuffled order
        streams = [(r, k) for r in range(world) for k in range(workers)]
        load = {s: 0 for s in streams}
        assign: dict = {s: [] for s in streams}
        for i in order:
            s = min(streams, key=lambda t: (load[t], t))
            assign[s].append(int(i))
            load[s] += counts[i]
        quota = {s: load[s] // self.batch_size for s in streams}
        target = min(sum(quota[(r, k)] for k in range(workers)) for r in range(world))
        for r in range(world):
            excess = sum(quota[(r, k)] for k in range(workers)) - target
            while excess > 0:
                s = max(((r, k) for k in range(workers)), key=lambda t: (quota[t], -t[1]))
                quota[s] -= 1
                excess -= 1
        self._cache = {key: {"offsets": offsets, "streams": assign, "quota": quota}}
        return self._cache[key]


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
    """This (rank, worker)'s shards of the epoch's :class:`EpochPlanner` plan, with their chunks' offsets."""

    def __init__(self, planner: EpochPlanner, epoch: SharedEpoch) -> None:
        self.planner, self.epoch = planner, epoch

    def run(self) -> Iterator[dict]:
        rank, world, worker, workers = rank_and_worker()
        plan = self.planner.plan(self.epoch.get_value(), world, workers)
        for i in plan["streams"][(rank, worker)]:
            yield {"url": self.planner.urls[i], "offsets": plan["offsets"][i]}


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
    skips the batches it had delivered (:func:`taken_per_worker`). The stream is deterministic given (seed, epoch, rank, worker), so the resumed run sees
    exactly the batches the uninterrupted run would have seen.
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
                raise RuntimeError(f"rank {rank}, worker {worker}: no training batch could be read this epoch")
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


_NPY_HEADER = re.compile(rb"'descr': '([^']+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\)")


def npy_from_bytes(data: bytes) -> np.ndarray:
    """Decode ``.npy`` bytes; C-order arrays as ieegfm writes them are read without a copy (read-only view).

    Falls back to :func:`numpy.load` for anything else (Fortran order, other header layouts).
    """
    if data[:6] == b"\x93NUMPY" and data[6] == 1:
        header_len = int.from_bytes(data[8:10], "little")
        m = _NPY_HEADER.search(data[10 : 10 + header_len])
        if m is not None:
            shape = tuple(int(v) for v in m.group(2).split(b",") if v.strip())
            return np.frombuffer(data, dtype=np.dtype(m.group(1).decode()), offset=10 + header_len).reshape(shape)
    return np.load(io.BytesIO(data), allow_pickle=False)


def tar_samples(src: Iterator[dict], handler=None) -> Iterator[dict]:
    """Samples of the shards named by ``{"url": path}`` items, read with :mod:`tarfile` in streaming mode.

    Members are grouped by key (``<key>.<ext>``), as WebDataset does; the reader is ieegfm's own because
    webdataset's generic tar iterator costs about ten times the raw read of the same bytes. A shard that
    cannot be read is passed to ``handler`` (log, count, continue) instead of stopping the epoch.
    """
    for item in src:
        url = item["url"]
        offsets = item.get("offsets")
        index = 0
        try:
            with open(url, "rb", buffering=1 << 22) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                sample: dict = {}
                for member in tar:
                    if not member.isfile():
                        continue
                    key, _, ext = member.name.partition(".")
                    if sample and key != sample["__key__"]:
                        yield sample
                        sample = {}
                        index += 1
                    sample["__key__"] = key
                    sample["__url__"] = url
                    if offsets is not None:
                        sample["__offset__"] = offsets[index]
                    f = tar.extractfile(member)
                    sample[ext] = f.read() if f is not None else b""
                if sample:
                    yield sample
        except Exception as exn:  # corrupt or truncated shard
            if handler is None or not handler(exn):
                raise


def decode_sample(sample: dict) -> dict:
    """Decode ``brain.npy``, ``audio.npy`` and ``json`` members (bytes) of one shard sample."""
    return {
        "__key__": sample["__key__"],
        "brain": npy_from_bytes(sample["brain.npy"]),
        "audio": npy_from_bytes(sample["audio.npy"]),
        "meta": json.loads(sample["json"]),
        "offset": sample.get("__offset__"),
    }


class SliceWindows:
    """Cut a chunk into fixed, non-overlapping windows of ``window_n`` samples from its start (evaluation).

    Training slices and shuffles windows with :class:`ShuffledWindowBatches` instead.

    Parameters
    ----------
    window_n : int
        Window length (samples at the shard ``sfreq``; 3 s at 40 Hz = 120).
    n_chans : int
        Channels of the output (zero-padded: subjects differ in channel count).
    subjects : dict
        Subject label -> integer index (for the per-subject projection).
    """

    def __init__(self, window_n: int, n_chans: int, subjects: dict[str, int]) -> None:
        self.window_n, self.n_chans, self.subjects = window_n, n_chans, subjects

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        for sample in src:
            brain, audio, meta = sample["brain"], sample["audio"], sample["meta"]
            n = brain.shape[1]
            if n < self.window_n:
                continue
            if brain.shape[0] < self.n_chans:  # windows stay float16 (as stored) until the model's device
                padded = np.zeros((self.n_chans, n), dtype=brain.dtype)
                padded[: brain.shape[0]] = brain
            else:
                padded = brain
            subject = self.subjects[meta["subject"]]
            for i, lo in enumerate(range(0, n - self.window_n + 1, self.window_n)):
                yield {
                    "brain": padded[:, lo : lo + self.window_n],
                    "audio": audio[:, lo : lo + self.window_n],
                    "subject": subject,
                    "day": meta["day"],
                    "key": f"{sample['__key__']}/{i}",
                    "tmin": meta["tmin"] + lo / meta["sfreq"],
                    "block": meta["block"],
                }


class ShuffledWindowBatches:
    """Training windows, shuffled through a buffer and batched, with array operations only.

    Each chunk is cut into non-overlapping ``window_n`` windows from a random offset in ``[0, window_n)`` (one
    reshape, no per-window objects). Windows enter a buffer of ``bufsize``; once it is full every incoming window
    replaces a uniformly drawn buffered one, which is emitted (a buffer shuffle, as ``webdataset.shuffle``, done
    for a whole chunk at a time). Emitted windows are cut into batches of ``batch_size``; at the end of the
    stream the buffer is emptied in random order and a last incomplete batch is dropped. All draws come from
    ``numpy.random.default_rng([seed, epoch, rank, worker])``, so a stream is reproducible (exact resume).

    Parameters
    ----------
    window_n : int
        Window length (samples).
    n_chans : int
        Channels of the output (zero-padded: subjects differ in channel count).
    subjects : dict
        Subject label -> integer index.
    batch_size : int
        Windows per batch.
    bufsize : int
        Shuffle buffer (windows).
    seed : int
    epoch : SharedEpoch

    Notes
    -----
    Yields the batches of :func:`collate` (float16 ``brain`` and ``audio``), with ``key`` naming each window.
    """

    def __init__(
        self,
        window_n: int,
        n_chans: int,
        subjects: dict[str, int],
        batch_size: int,
        bufsize: int,
        seed: int,
        epoch: SharedEpoch,
    ) -> None:
        self.window_n, self.n_chans, self.subjects = window_n, n_chans, subjects
        self.batch_size, self.bufsize, self.seed, self.epoch = batch_size, max(bufsize, 1), seed, epoch

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, _, worker, _ = rank_and_worker()
        rng = np.random.default_rng([self.seed, self.epoch.get_value(), rank, worker])
        w, cap = self.window_n, self.bufsize
        buf: dict | None = None
        fill = 0
        pending: list[dict] = []
        n_pending = 0
        for sample in src:
            brain, audio, meta = sample["brain"], sample["audio"], sample["meta"]
            n = brain.shape[1]
            if n < w:
                continue
            drawn = int(rng.integers(0, min(w, n - w + 1)))  # drawn anyway: the stream does not depend on plans
            off = drawn if sample.get("offset") is None else int(sample["offset"])
            k = (n - off) // w
            new = {
                "brain": brain[:, off : off + k * w].reshape(brain.shape[0], k, w).transpose(1, 0, 2),
                "audio": audio[:, off : off + k * w].reshape(audio.shape[0], k, w).transpose(1, 0, 2),
                "subject": np.full(k, self.subjects[meta["subject"]], dtype=np.int64),
                "day": np.full(k, meta["day"], dtype=np.int64),
                "key": np.array([f"{sample['__key__']}/{i}" for i in range(k)], dtype=object),
            }
            if buf is None:
                buf = {
                    "brain": np.zeros((cap, self.n_chans, w), brain.dtype),
                    "audio": np.zeros((cap, audio.shape[0], w), audio.dtype),
                    "subject": np.zeros(cap, np.int64),
                    "day": np.zeros(cap, np.int64),
                    "key": np.empty(cap, dtype=object),
                }
            start = 0
            while start < k:
                if fill < cap:  # filling: append
                    m = min(k - start, cap - fill)
                    slots = np.arange(fill, fill + m)
                    fill += m
                else:  # full: each new window replaces (and emits) a random buffered one
                    m = min(k - start, cap)
                    slots = rng.choice(cap, size=m, replace=False)
                    pending.append({name: arr[slots].copy() for name, arr in buf.items()})
                    n_pending += m
                for name, arr in buf.items():
                    part = new[name][start : start + m]
                    if name == "brain" and part.shape[1] < self.n_chans:
                        arr[slots] = 0
                        arr[slots, : part.shape[1]] = part
                    else:
                        arr[slots] = part
                start += m
            while n_pending >= self.batch_size:
                batch, pending, n_pending = _take(pending, self.batch_size)
                yield batch
        if buf is not None and fill:
            order = rng.permutation(fill)
            pending.append({name: arr[order] for name, arr in buf.items()})
            n_pending += fill
            while n_pending >= self.batch_size:
                batch, pending, n_pending = _take(pending, self.batch_size)
                yield batch


def _take(pending: list[dict], size: int) -> tuple[dict, list[dict], int]:
    """First ``size`` windows of the pending arrays as a batch; the rest stays pending."""
    cat = {name: np.concatenate([p[name] for p in pending]) for name in pending[0]}
    rest = {name: arr[size:] for name, arr in cat.items()}
    batch = {
        "brain": torch.from_numpy(np.ascontiguousarray(cat["brain"][:size])),
        "audio": torch.from_numpy(np.ascontiguousarray(cat["audio"][:size])),
        "subject": torch.from_numpy(cat["subject"][:size].copy()),
        "day": torch.from_numpy(cat["day"][:size].copy()),
        "key": list(cat["key"][:size]),
    }
    n_rest = len(rest["subject"])
    return batch, ([rest] if n_rest else []), n_rest


def identity(batch):
    """DataLoader ``collate_fn`` for already-collated batches (skips torch's recursive ``default_convert``)."""
    return batch


def collate(windows: list[dict]) -> dict:
    """Stack windows into a batch: ``brain`` (batch, n_chans, n_times), ``audio`` (batch, n_features, n_times),
    both float16 as stored in the shards (half the host memory and host-to-device traffic; the model casts on its
    device), ``subject`` and ``day`` (batch,) long, ``key`` list of str."""
    return {
        "brain": torch.from_numpy(np.stack([w["brain"] for w in windows])),
        "audio": torch.from_numpy(np.stack([w["audio"] for w in windows])),
        "subject": torch.tensor([w["subject"] for w in windows], dtype=torch.long),
        "day": torch.tensor([w["day"] for w in windows], dtype=torch.long),
        "key": [w["key"] for w in windows],
    }
