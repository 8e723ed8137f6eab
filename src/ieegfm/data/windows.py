"""Windows from shard chunks: fixed evaluation windows, and shuffled training batches built with array operations.

Stages are module-level callables (picklable for DataLoader workers), never lambdas. Every batch, training or
evaluation, has one contract (see :func:`collate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ieegfm.data.plan import EpochPlanner, SharedEpoch, rank_and_worker


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
    audio_step : int
        Brain samples per stored audio bin (``ieegfm pack audio.pool_s``; 1 = frames).
    """

    def __init__(self, window_n: int, n_chans: int, subjects: dict[str, int], audio_step: int = 1) -> None:
        self.window_n, self.n_chans, self.subjects, self.audio_step = window_n, n_chans, subjects, audio_step

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
                    "audio": audio[:, lo // self.audio_step : (lo + self.window_n) // self.audio_step],
                    "subject": subject,
                    "day": meta["day"],
                    "key": f"{sample['__key__']}/{i}",
                    "tmin": meta["tmin"] + lo / meta["sfreq"],
                    "block": meta["block"],
                }


class ShuffledWindowBatches:
    """Training windows, shuffled through a buffer and batched, with array operations only.

    Each chunk is cut into non-overlapping ``window_n`` windows from a random offset in ``[0, window_n)`` (one
    reshape, no per-window objects), or from the offset and window range an :class:`EpochPlanner` plan gives
    it. Windows enter a buffer of ``bufsize``; once it is full every incoming window replaces a buffered one,
    which is emitted (a buffer shuffle, as ``webdataset.shuffle``, done for a whole chunk at a time). The slots
    replaced follow a random permutation of the buffer, redrawn when used up, rather than independent draws: the
    same mixing at a fraction of the cost, and no window lingers for more than about two buffer lengths. At the
    end of the stream the buffer is emptied in random order. A buffered window is its brain, its audio and one int64
    reference to its chunk (serial and window index), whose key, block, subject, day and start are recorded once
    per chunk and gathered when its batch is emitted. Emitted windows are cut into
    batches: of the sizes the plan gives this stream (every window emitted, see :class:`EpochPlanner`), or,
    without a plan, of ``batch_size`` with a last incomplete batch dropped. All draws come from
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
        Windows per batch (without a plan).
    bufsize : int
        Shuffle buffer (windows).
    seed : int
    epoch : SharedEpoch
    planner : EpochPlanner, optional
        The epoch plan giving this stream's batch sizes.
    audio_pooling : {None, 'mean'}
        ``'mean'``: each window's audio is its time average, computed here in float32 (what the ``mean``-pooled
        contrastive target uses): ``n_times`` times less host memory, inter-process and host-to-device traffic.
    audio_step : int
        Brain samples per stored audio bin (shards packed with ``audio.pool_s``); window offsets are then
        multiples of it, so window means of the bins are exact.
    group_by_subject : bool
        Batches of one subject each, unpadded: a batch's ``brain`` has that subject's own channels, not the
        largest implant's (``data.group_by_subject``). Windows leave the shuffle buffer as without it and wait
        in a per-subject queue (fewer than a batch each) until their subject has a batch's worth; at the end of
        the stream the queues' remainder fills the last batches, mixed and padded to ``n_chans``. The number and
        sizes of the batches are those of the plan (or ``batch_size``), so DDP ranks stay in step. The contrastive
        loss's in-batch negatives then come from the same patient (candidates as in evaluation).

    Notes
    -----
    Yields dicts: ``brain`` (batch, n_chans, n_times) float16 (``group_by_subject``: the batch's subject's
    channels); ``audio`` (batch, n_features, n_times) float16,
    or (batch, n_features) float32 with ``audio_pooling='mean'``; ``subject``, ``day`` (batch,) long; ``tmin``
    (batch,) float64 (window start in its block, s); ``key`` and ``block`` (batch,) numpy str arrays naming each
    window (``<chunk key>/<window index in the chunk>``) and its block (one array rather than a list of strings,
    which every collection walker on the way to the GPU would visit string by string). Same contract as
    :func:`collate`.
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
        planner: EpochPlanner | None = None,
        audio_pooling: str | None = None,
        audio_step: int = 1,
        group_by_subject: bool = False,
    ) -> None:
        if audio_pooling not in (None, "mean"):
            raise ValueError(f"audio_pooling must be None or 'mean', got {audio_pooling!r}")
        self.window_n, self.n_chans, self.subjects = window_n, n_chans, subjects
        self.batch_size, self.bufsize, self.seed, self.epoch = batch_size, max(bufsize, 1), seed, epoch
        self.planner, self.audio_pooling, self.audio_step = planner, audio_pooling, audio_step
        self.group_by_subject = group_by_subject

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, world, worker, workers = rank_and_worker()
        epoch = self.epoch.get_value()
        rng = np.random.default_rng([self.seed, epoch, rank, worker])
        sizes = None
        if self.planner is not None:
            sizes = iter(self.planner.plan(epoch, world, workers)["sizes"][(rank, worker)])
        target = next(sizes, 0) if sizes is not None else self.batch_size
        w, cap = self.window_n, self.bufsize
        chunks = _ChunkTable(w)  # what every window of a chunk shares; buffered windows hold (chunk, index) refs
        buf: dict | None = None  # brain, audio and ref of the buffered windows
        fill = 0
        cycle, cycle_pos = np.arange(0), cap  # replacement order of the full buffer's slots
        out: dict | None = None  # the batch being filled, straight from the buffer (one copy per window)
        filled = 0

        queues: dict[int, list[dict]] = {}  # group_by_subject: subject -> copies of its emitted windows
        queued: dict[int, int] = {}

        def emit_grouped(slots: np.ndarray) -> Iterator[dict]:
            """Queue buffered windows ``slots`` by subject, yielding a batch whenever a subject has a batch's worth."""
            nonlocal target
            subject = chunks.subject[buf["ref"][slots] >> _REF_BITS]
            for s in np.unique(subject):
                rows = slots[subject == s]
                n_chans = chunks.n_chans_of[s]
                part = {name: arr[rows] if name != "brain" else arr[rows, :n_chans] for name, arr in buf.items()}
                queues.setdefault(s, []).append(part)
                queued[s] = queued.get(s, 0) + len(rows)
                while target and queued[s] >= target:
                    yield chunks.batch(_take(queues[s], target), target)
                    queued[s] -= target
                    target = next(sizes, 0) if sizes is not None else target

        def emit(slots: np.ndarray) -> Iterator[dict]:
            """Copy buffered windows ``slots`` into batches, yielding every completed batch."""
            nonlocal out, filled, target
            if self.group_by_subject:
                yield from emit_grouped(slots)
                return
            i = 0
            while i < len(slots) and target:
                if out is None:
                    out = {name: np.empty((target, *arr.shape[1:]), arr.dtype) for name, arr in buf.items()}
                n = min(len(slots) - i, target - filled)
                for name, arr in buf.items():
                    out[name][filled : filled + n] = arr[slots[i : i + n]]
                filled, i = filled + n, i + n
                if filled == target:
                    yield chunks.batch(out, filled)
                    out, filled = None, 0
                    target = next(sizes, 0) if sizes is not None else target

        for sample in src:
            brain, audio, meta = sample["brain"], sample["audio"], sample["meta"]
            n = brain.shape[1]
            if n < w:
                continue
            off, p = sample.get("offset"), self.audio_step
            off = int(rng.integers(0, (min(w, n - w + 1) - 1) // p + 1)) * p if off is None else int(off)
            lo, hi = sample.get("take") or (0, (n - off) // w)
            hi = min(hi, (n - off) // w)
            k = hi - lo
            if k <= 0:
                continue
            a, b = off + lo * w, off + hi * w
            frames = audio[:, a // p : b // p].reshape(audio.shape[0], k, w // p)
            new = {
                "brain": brain[:, a:b].reshape(brain.shape[0], k, w).transpose(1, 0, 2),
                "audio": _time_mean(frames).T if self.audio_pooling else frames.transpose(1, 0, 2),
                "ref": chunks.add(sample["__key__"], meta, self.subjects[meta["subject"]], off, brain.shape[0])
                + np.arange(lo, hi),
            }
            if buf is None:
                buf = {
                    "brain": np.zeros((cap, self.n_chans, w), brain.dtype),
                    "audio": np.zeros((cap, *new["audio"].shape[1:]), new["audio"].dtype),
                    "ref": np.zeros(cap, np.int64),
                }
            start = 0
            while start < k:
                if fill < cap:  # filling: append
                    m = min(k - start, cap - fill)
                    slots = np.arange(fill, fill + m)
                    fill += m
                else:  # full: each new window replaces (and emits) the buffered one in the next random slot
                    m = min(k - start, cap)
                    if cycle_pos + m > cap:  # a fresh permutation (slots within one draw stay distinct)
                        cycle, cycle_pos = rng.permutation(cap), 0
                    slots = cycle[cycle_pos : cycle_pos + m]
                    cycle_pos += m
                    yield from emit(slots)
                part = new["brain"][start : start + m]
                if part.shape[1] < self.n_chans:
                    buf["brain"][slots, part.shape[1] :] = 0
                    buf["brain"][slots, : part.shape[1]] = part
                else:
                    buf["brain"][slots] = part
                buf["audio"][slots] = new["audio"][start : start + m]
                buf["ref"][slots] = new["ref"][start : start + m]
                start += m
        if buf is not None and fill:
            yield from emit(rng.permutation(fill))
        if queues:  # group_by_subject: the queues' remainder (less than a batch per subject) fills the last batches
            rest = [p for s in sorted(queues) for p in queues[s]]
            for p in rest:  # mixed subjects: padded to the largest implant
                if p["brain"].shape[1] < self.n_chans:
                    p["brain"] = np.pad(p["brain"], ((0, 0), (0, self.n_chans - p["brain"].shape[1]), (0, 0)))
            left = sum(len(p["ref"]) for p in rest)
            while left and target and (left >= target or sizes is not None):  # a plan's sizes take every window
                n = min(target, left)
                yield chunks.batch(_take(rest, n), n)
                left -= n
                target = next(sizes, 0) if sizes is not None else target
        if filled and sizes is not None:  # a plan's stream ran short (a corrupt shard): its last, smaller batch
            yield chunks.batch(out, filled)


_REF_BITS = 32  # a buffered window's ref: (chunk serial << _REF_BITS) + its window index in the chunk


class _ChunkTable:
    """What the windows of one stream's chunks share (key, block, subject, day, start), indexed by chunk serial.

    Buffered windows carry one int64 ref (chunk serial and window index) instead of five per-window fields, so a
    window's way through the shuffle buffer copies three arrays (brain, audio, ref), not seven; the batch's
    per-window fields are gathered from this table when it is emitted.
    """

    def __init__(self, window_n: int) -> None:
        self.window_n, self.n = window_n, 0
        self.subject = np.zeros(64, np.int64)
        self.day = np.zeros(64, np.int64)
        self.tmin = np.zeros(64, np.float64)  # the chunk's start in its block (s)
        self.off = np.zeros(64, np.int64)  # the first window's offset in the chunk (samples)
        self.sfreq = np.zeros(64, np.float64)
        self.key: list[str] = []
        self.block: list[str] = []
        self.n_chans_of: dict[int, int] = {}  # subject -> its own channel count

    def add(self, key: str, meta: dict, subject: int, off: int, n_chans: int) -> int:
        """Record a chunk; returns the ref of its window 0 (add the window index)."""
        i = self.n
        if i == len(self.subject):
            for name in ("subject", "day", "tmin", "off", "sfreq"):
                setattr(self, name, np.resize(getattr(self, name), 2 * i))
        self.subject[i], self.day[i], self.tmin[i] = subject, meta["day"], meta["tmin"]
        self.off[i], self.sfreq[i] = off, meta["sfreq"]
        self.key.append(key)
        self.block.append(meta["block"])
        self.n_chans_of[subject] = n_chans
        self.n += 1
        return i << _REF_BITS

    def batch(self, arrays: dict, n: int) -> dict:
        """The first ``n`` rows of batch arrays (brain, audio, ref) as the batch contract (tensors, no copy of a
        full batch's brain and audio)."""
        ref = arrays["ref"][:n]
        serial, index = ref >> _REF_BITS, ref & ((1 << _REF_BITS) - 1)
        key, block = self.key, self.block
        return {
            "brain": torch.from_numpy(arrays["brain"][:n]),
            "audio": torch.from_numpy(arrays["audio"][:n]),
            "subject": torch.from_numpy(self.subject[serial]),
            "day": torch.from_numpy(self.day[serial]),
            "tmin": torch.from_numpy(
                self.tmin[serial] + (self.off[serial] + index * self.window_n) / self.sfreq[serial]
            ),
            "key": np.array([f"{key[s]}/{i}" for s, i in zip(serial.tolist(), index.tolist())], dtype=str),
            "block": np.array([block[s] for s in serial.tolist()], dtype=str),
        }


def _take(parts: list[dict], n: int) -> dict:
    """The first ``n`` windows of a queue of window arrays (removed from it), as one set of arrays."""
    taken, got = [], 0
    while got < n:
        part = parts[0]
        m = min(len(part["ref"]), n - got)
        if m == len(part["ref"]):
            taken.append(parts.pop(0))
        else:
            taken.append({name: arr[:m] for name, arr in part.items()})
            parts[0] = {name: arr[m:] for name, arr in part.items()}
        got += m
    if len(taken) == 1:  # one queued part holds the batch: no second copy
        return taken[0]
    return {name: np.concatenate([p[name] for p in taken]) for name in taken[0]}


def _time_mean(frames: np.ndarray) -> np.ndarray:
    """Mean over the last axis of a float16 array, in float32 (torch's CPU kernels: ~6x numpy's on float16)."""
    with warnings.catch_warnings():  # a read-only view of the shard bytes: only read here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(frames).mean(-1, dtype=torch.float32).numpy()


def identity(batch):
    """DataLoader ``collate_fn`` for already-collated batches (skips torch's recursive ``default_convert``)."""
    return batch


def collate(windows: list[dict]) -> dict:
    """Stack evaluation windows into a batch (the one batch contract, training and evaluation alike).

    ``brain`` (batch, n_chans, n_times) and ``audio`` (batch, n_features, n_times), both float16 as stored in the
    shards (half the host memory and host-to-device traffic; the model casts on its device); ``subject`` and
    ``day`` (batch,) long; ``tmin`` (batch,) float64, the window's start (s) in its block; ``key`` and ``block``
    (batch,) numpy str arrays (``<chunk key>/<window index>``, the recording block id). Training batches
    (:class:`ShuffledWindowBatches`) carry the same keys."""
    return {
        "brain": torch.from_numpy(np.stack([w["brain"] for w in windows])),
        "audio": torch.from_numpy(np.stack([w["audio"] for w in windows])),
        "subject": torch.tensor([w["subject"] for w in windows], dtype=torch.long),
        "day": torch.tensor([w["day"] for w in windows], dtype=torch.long),
        "tmin": torch.tensor([w["tmin"] for w in windows], dtype=torch.float64),
        "key": np.array([w["key"] for w in windows], dtype=str),
        "block": np.array([w["block"] for w in windows], dtype=str),
    }
