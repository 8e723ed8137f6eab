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


class ShardList(wds.PipelineStage):
    """Shard URLs, reshuffled every epoch with ``random.Random((seed, epoch))`` (the same on every rank).

    With ``repeat=True`` the list is repeated (reshuffled each time) forever; :class:`EpochBatches` downstream
    ends the epoch, so every rank yields the same number of batches.
    """

    def __init__(
        self, urls: list[str], seed: int, epoch: SharedEpoch, shuffle: bool = True, repeat: bool = False
    ) -> None:
        self.urls, self.seed, self.epoch, self.shuffle, self.repeat = list(urls), seed, epoch, shuffle, repeat

    def run(self) -> Iterator[dict]:
        epoch = self.epoch.get_value()
        lap = 0
        while True:
            urls = list(self.urls)
            if self.shuffle:
                random.Random(f"{self.seed}-{epoch}-{lap}").shuffle(urls)
            for url in urls:
                yield {"url": url}
            lap += 1
            if not self.repeat:
                return


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
    """End a worker's epoch after ``n_batches`` and, after a resume, skip the batches already trained on.

    The DataLoader takes batches from its workers in turn, so global batch ``j`` is batch ``j // num_workers`` of
    worker ``j % num_workers``; a resume at ``k`` done batches skips ``len(range(worker, k, num_workers))`` of
    this worker's batches. The stream is deterministic given (seed, epoch, rank, worker), so the resumed run sees
    exactly the batches the uninterrupted run would have seen.
    """

    def __init__(self, n_batches: int, epoch: SharedEpoch, resume: ResumePosition) -> None:
        self.n_batches, self.epoch, self.resume = n_batches, epoch, resume

    def run(self, src: Iterator[dict]) -> Iterator[dict]:
        _, _, worker, workers = rank_and_worker()
        skip = 0
        if self.resume.epoch.value == self.epoch.get_value():
            skip = len(range(worker, self.resume.batches.value, workers))
        for i, batch in enumerate(src):
            if i >= self.n_batches:
                return
            if i >= skip:
                yield batch


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
                    sample["__key__"] = key
                    sample["__url__"] = url
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
    }


class SliceWindows:
    """Cut a chunk into non-overlapping windows of ``window_n`` samples.

    Parameters
    ----------
    window_n : int
        Window length (samples at the shard ``sfreq``; 3 s at 40 Hz = 120).
    n_chans : int
        Channels of the output (zero-padded: subjects differ in channel count).
    subjects : dict
        Subject label -> integer index (for the per-subject projection).
    random_offset : bool
        Start at a random offset in ``[0, window_n)`` (training), else at 0 (evaluation: fixed windows).
    seed : int
    epoch : SharedEpoch | None
    """

    def __init__(
        self,
        window_n: int,
        n_chans: int,
        subjects: dict[str, int],
        random_offset: bool,
        seed: int = 0,
        epoch: SharedEpoch | None = None,
    ) -> None:
        self.window_n, self.n_chans, self.subjects = window_n, n_chans, subjects
        self.random_offset, self.seed, self.epoch = random_offset, seed, epoch

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, _, worker, _ = rank_and_worker()
        epoch = self.epoch.get_value() if self.epoch is not None else 0
        rng = np.random.default_rng([self.seed, epoch, rank, worker])
        for sample in src:
            brain, audio, meta = sample["brain"], sample["audio"], sample["meta"]
            n = brain.shape[1]
            if n < self.window_n:
                continue
            offset = int(rng.integers(0, min(self.window_n, n - self.window_n + 1))) if self.random_offset else 0
            if brain.shape[0] < self.n_chans:  # windows stay float16 (as stored) until the model's device
                padded = np.zeros((self.n_chans, n), dtype=brain.dtype)
                padded[: brain.shape[0]] = brain
            else:
                padded = brain
            subject = self.subjects[meta["subject"]]
            for i, lo in enumerate(range(offset, n - self.window_n + 1, self.window_n)):
                yield {
                    "brain": padded[:, lo : lo + self.window_n],
                    "audio": audio[:, lo : lo + self.window_n],
                    "subject": subject,
                    "day": meta["day"],
                    "key": f"{sample['__key__']}/{i}",
                    "tmin": meta["tmin"] + lo / meta["sfreq"],
                    "block": meta["block"],
                }


class ShuffleWindows:
    """Buffer shuffle of windows seeded by ``(seed, epoch, rank, worker)``."""

    def __init__(self, bufsize: int, seed: int, epoch: SharedEpoch) -> None:
        self.bufsize, self.seed, self.epoch = bufsize, seed, epoch

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, _, worker, _ = rank_and_worker()
        rng = random.Random(f"{self.seed}-{self.epoch.get_value()}-{rank}-{worker}")
        buf: list[dict] = []
        for item in src:
            if len(buf) < self.bufsize:
                buf.append(item)
                if len(buf) < self.bufsize:
                    continue
            j = rng.randrange(len(buf))
            buf[j], item = item, buf[j]
            yield item
        rng.shuffle(buf)
        yield from buf


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
            off = int(rng.integers(0, min(w, n - w + 1)))
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
