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
import time
import warnings
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
    shards : list of dict
        Manifest shard entries with ``name`` and ``chunk_lengths`` (samples per chunk, in tar order).
    urls : list of str
        Their paths.
    window_n : int
        Window length (samples).
    batch_size : int
        Windows per full batch (per rank).
    seed : int
    step : int
        Window offsets are multiples of ``step`` samples (the shards' audio bin, ``ieegfm pack audio.pool_s``).

    Notes
    -----
    This is the exactly-once contract of ``DistributedSampler(drop_last=False)`` without its padding by
    repeated samples: uneven final batches replace both dropping and repeating.
    """

    def __init__(
        self, shards: list[dict], urls: list[str], window_n: int, batch_size: int, seed: int, step: int = 1
    ) -> None:
        self.lengths = [np.asarray(s["chunk_lengths"], dtype=np.int64) for s in shards]
        self.urls, self.window_n, self.batch_size, self.seed = list(urls), window_n, batch_size, seed
        self.step = step
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
            ``{(rank, worker): [batch sizes]}``; ``quota``: ``{(rank, worker): number of batches}``. Arrays,
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


def npy_from_bytes(data: bytes | memoryview) -> np.ndarray:
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


MAX_FAILED_SHARDS_IN_A_ROW = 50  # a stream stops with an error instead of skipping unreadable shards forever
_REGULAR = (ord("0"), 0, ord("7"))  # tar type flags of regular files (contiguous files count as regular)


def _octal(field: bytes, url: str, pos: int) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU) for large values
        return int.from_bytes(field[1:], "big")
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise tarfile.ReadError(f"{url}: invalid number in the tar header at byte {pos}") from None


def tar_members(url: str, want=None) -> Iterator[tuple[str, memoryview | None]]:
    """``(name, data)`` of the regular files of a tar, in order, reading only the bytes needed.

    ``data`` is a read-only view of the bytes read (one ``read`` call per member, which also fetches the next
    header).

    A small parser of ustar headers (with pax ``x``/``g`` and GNU ``L`` long-name records), about three times
    faster than :mod:`tarfile`, which builds a full ``TarInfo`` per member. Header checksums are verified.

    Parameters
    ----------
    url : str
        Path of a (seekable) tar file.
    want : callable, optional
        ``want(name) -> bool``; the data of members it rejects is skipped with a seek (``data`` is ``None``).

    Raises
    ------
    tarfile.ReadError
        Bad header checksum or number, or a member running past the end of the file (truncated shard).
    """
    with open(url, "rb", buffering=0) as f:
        pos, long_name, pax = 0, None, {}
        header = f.read(512)
        while True:
            if len(header) < 512 or header.count(0) == 512:  # end of archive (or a file ending on a boundary)
                if header and header.count(0) != len(header):
                    raise tarfile.ReadError(f"{url}: truncated tar header at byte {pos}")
                return
            stored = _octal(header[148:156], url, pos)
            if stored != sum(header) - sum(header[148:156]) + 256:
                raise tarfile.ReadError(f"{url}: bad tar header checksum at byte {pos} (corrupt shard?)")
            size = int(pax.get("size", _octal(header[124:136], url, pos)))
            kind = header[156]
            pos += 512
            padded = (size + 511) // 512 * 512
            if kind in (ord("x"), ord("g"), ord("L")):  # metadata records for the next member
                data = f.read(padded)[:size]
                if kind == ord("L"):
                    long_name = data.split(b"\0", 1)[0].decode()
                elif kind == ord("x"):
                    pax = _pax_records(data)
                pos += padded
                header = f.read(512)
                continue
            name = pax.get("path") or long_name
            if name is None:
                name = header[:100].split(b"\0", 1)[0].decode()
                if header[257:262] == b"ustar" and header[345]:
                    name = header[345:500].split(b"\0", 1)[0].decode() + "/" + name
            long_name, pax = None, {}
            if kind not in _REGULAR or (want is not None and not want(name)):
                f.seek(padded, 1)
                header = f.read(512)
                if kind in _REGULAR:
                    yield name, None
            else:  # one read for the data and the next header
                block = f.read(padded + 512)
                if len(block) < size:
                    raise tarfile.ReadError(f"{url}: member {name!r} truncated ({len(block)} of {size} bytes)")
                header = block[padded:]
                yield name, memoryview(block)[:size]
            pos += padded


def _pax_records(data: bytes) -> dict:
    """``key=value`` records of a pax extended header."""
    out, i = {}, 0
    while i < len(data):
        space = data.index(b" ", i)
        length = int(data[i:space])
        key, _, value = data[space + 1 : i + length - 1].partition(b"=")
        out[key.decode()] = value.decode()
        i += length
    return out


def tar_samples(src: Iterator[dict], handler=None) -> Iterator[dict]:
    """Samples of the shards named by ``{"url": path}`` items.

    Members (read with :func:`tar_members`) are grouped by key (``<key>.<ext>``), as WebDataset does; the reader
    is ieegfm's own because webdataset's generic tar iterator costs about ten times the raw read of the same
    bytes. Items of an :class:`EpochPlanner` plan also carry per-chunk ``offsets`` and ``takes`` (window index
    ranges, attached to the samples as ``__offset__`` and ``__take__``); chunks with nothing to take are skipped
    without reading their data (seeks), and reading stops after the last chunk needed. A shard that cannot be
    read, or holds more chunks than its manifest entry, is passed to ``handler`` (log, count, continue) instead
    of stopping the epoch; ``MAX_FAILED_SHARDS_IN_A_ROW`` unreadable shards in a row raise ``RuntimeError`` (a
    resampled stream would otherwise skip forever when the shards are gone).
    """
    failures = 0  # shards in a row that could not be read
    for item in src:
        url = item["url"]
        offsets, takes = item.get("offsets"), item.get("takes")
        last = None if takes is None else max((i for i, (a, b) in enumerate(takes) if b > a), default=-1)
        state = {"index": -1, "key": None}

        def want(name: str, state=state, takes=takes) -> bool:
            key = name.partition(".")[0]
            if key != state["key"]:
                state["index"], state["key"] = state["index"] + 1, key
            i = state["index"]
            return takes is None or (i < len(takes) and takes[i][1] > takes[i][0])

        try:
            sample: dict = {}
            for name, data in tar_members(url, want):
                key, _, ext = name.partition(".")
                index = state["index"]
                if sample and key != sample["__key__"]:
                    yield sample
                    sample = {}
                if last is not None and index > last:
                    break
                if offsets is not None and index >= len(offsets):
                    raise ValueError(f"{url}: more chunks than its manifest entry lists ({len(offsets)})")
                if data is None:
                    continue  # nothing to take from this chunk: its data was skipped
                if not sample:
                    sample = {"__key__": key, "__url__": url}
                    if offsets is not None:
                        sample["__offset__"] = offsets[index]
                    if takes is not None:
                        sample["__take__"] = tuple(takes[index])
                sample[ext] = data
            if sample:
                yield sample
            failures = 0
        except Exception as exn:  # corrupt or truncated shard
            failures += 1
            if failures >= MAX_FAILED_SHARDS_IN_A_ROW:  # e.g. the shard folder is gone: fail, do not spin
                raise RuntimeError(f"{failures} shards in a row could not be read; the last, {url}: {exn!r}") from exn
            if handler is None or not handler(exn):
                raise


def decode_sample(sample: dict) -> dict:
    """Decode ``brain.npy``, ``audio.npy`` and ``json`` members (bytes) of one shard sample."""
    return {
        "__key__": sample["__key__"],
        "brain": npy_from_bytes(sample["brain.npy"]),
        "audio": npy_from_bytes(sample["audio.npy"]),
        "meta": json.loads(bytes(sample["json"])),
        "offset": sample.get("__offset__"),
        "take": sample.get("__take__"),
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
    end of the stream the buffer is emptied in random order. Emitted windows are cut into
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

    Notes
    -----
    Yields dicts: ``brain`` (batch, n_chans, n_times) float16; ``audio`` (batch, n_features, n_times) float16,
    or (batch, n_features) float32 with ``audio_pooling='mean'``; ``subject``, ``day`` (batch,) long; ``key``
    (batch,) numpy str array naming each window (``<chunk key>/<window index in the chunk>``; one array rather
    than a list of strings, which every collection walker on the way to the GPU would visit string by string).
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
    ) -> None:
        if audio_pooling not in (None, "mean"):
            raise ValueError(f"audio_pooling must be None or 'mean', got {audio_pooling!r}")
        self.window_n, self.n_chans, self.subjects = window_n, n_chans, subjects
        self.batch_size, self.bufsize, self.seed, self.epoch = batch_size, max(bufsize, 1), seed, epoch
        self.planner, self.audio_pooling, self.audio_step = planner, audio_pooling, audio_step

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        rank, world, worker, workers = rank_and_worker()
        epoch = self.epoch.get_value()
        rng = np.random.default_rng([self.seed, epoch, rank, worker])
        sizes = None
        if self.planner is not None:
            sizes = iter(self.planner.plan(epoch, world, workers)["sizes"][(rank, worker)])
        target = next(sizes, 0) if sizes is not None else self.batch_size
        w, cap = self.window_n, self.bufsize
        buf: dict | None = None
        fill = 0
        cycle, cycle_pos = np.arange(0), cap  # replacement order of the full buffer's slots
        out: dict | None = None  # the batch being filled, straight from the buffer (one copy per window)
        filled = 0

        def emit(slots: np.ndarray) -> Iterator[dict]:
            """Copy buffered windows ``slots`` into batches, yielding every completed batch."""
            nonlocal out, filled, target
            i = 0
            while i < len(slots) and target:
                if out is None:
                    out = {name: np.empty((target, *arr.shape[1:]), arr.dtype) for name, arr in buf.items()}
                n = min(len(slots) - i, target - filled)
                for name, arr in buf.items():
                    out[name][filled : filled + n] = arr[slots[i : i + n]]
                filled, i = filled + n, i + n
                if filled == target:
                    yield _to_batch(out, filled)
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
                "subject": self.subjects[meta["subject"]],  # scalars, broadcast into the buffer slots
                "day": meta["day"],
                "key": np.array([f"{sample['__key__']}/{i}" for i in range(lo, hi)], dtype=object),
            }
            if buf is None:
                buf = {
                    "brain": np.zeros((cap, self.n_chans, w), brain.dtype),
                    "audio": np.zeros((cap, *new["audio"].shape[1:]), new["audio"].dtype),
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
                else:  # full: each new window replaces (and emits) the buffered one in the next random slot
                    m = min(k - start, cap)
                    if cycle_pos + m > cap:  # a fresh permutation (slots within one draw stay distinct)
                        cycle, cycle_pos = rng.permutation(cap), 0
                    slots = cycle[cycle_pos : cycle_pos + m]
                    cycle_pos += m
                    yield from emit(slots)
                for name, arr in buf.items():
                    part = new[name] if np.ndim(new[name]) == 0 else new[name][start : start + m]
                    if name == "brain" and part.shape[1] < self.n_chans:
                        arr[slots] = 0
                        arr[slots, : part.shape[1]] = part
                    else:
                        arr[slots] = part
                start += m
        if buf is not None and fill:
            yield from emit(rng.permutation(fill))
        if filled and sizes is not None:  # a plan's stream ran short (a corrupt shard): its last, smaller batch
            yield _to_batch(out, filled)


def _time_mean(frames: np.ndarray) -> np.ndarray:
    """Mean over the last axis of a float16 array, in float32 (torch's CPU kernels: ~6x numpy's on float16)."""
    with warnings.catch_warnings():  # a read-only view of the shard bytes: only read here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(frames).mean(-1, dtype=torch.float32).numpy()


def _to_batch(arrays: dict, n: int) -> dict:
    """The first ``n`` rows of batch arrays as tensors (views, no copy when ``n`` is the full batch)."""
    return {
        "brain": torch.from_numpy(arrays["brain"][:n]),
        "audio": torch.from_numpy(arrays["audio"][:n]),
        "subject": torch.from_numpy(arrays["subject"][:n]),
        "day": torch.from_numpy(arrays["day"][:n]),
        "key": arrays["key"][:n].astype(str),
    }


class FetchTiming:
    """DataLoader mixin that adds up the seconds the main process spends blocked in ``next()`` (``fetch_s``).

    That is the data stall seen by the training loop: waiting for workers, inter-process transfer and pinning,
    and nothing else (not the loop's own bookkeeping).
    """

    fetch_s = 0.0

    def __iter__(self):
        it = super().__iter__()
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.fetch_s += time.perf_counter() - t
            yield batch


class TimedWebLoader(FetchTiming, wds.WebLoader):
    """``webdataset.WebLoader`` with :class:`FetchTiming`."""


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
