"""LightningDataModule streaming ieegfm shards with webdataset (DDP / multi-node aware)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import webdataset as wds

from ieegfm.data.balance import check_alpha, chunk_subjects
from ieegfm.data.loader import TimedWebLoader
from ieegfm.data.plan import (
    EpochBatches,
    EpochPlanner,
    PlannedShardList,
    ResampledShardList,
    ResumePosition,
    SharedEpoch,
)
from ieegfm.data.tar import CorruptCounter, decode_windows_sample, tar_samples
from ieegfm.data.windows import ShuffledWindowBatches, SliceWindows, collate, identity
from ieegfm.errors import InputError
from ieegfm.io.manifest import ShardEntry, read_manifest

logger = logging.getLogger(__name__)


class ShardDataModule(L.LightningDataModule):
    """Windows from ieegfm shards.

    Training, epoch mode (default): an :class:`~ieegfm.data.plan.EpochPlanner` plan splits the epoch's
    windows between the ranks x workers streams so that every window is used exactly once per epoch and every
    rank runs the same number of batches (uneven ranks would hang DDP; the last batches of an epoch may be
    smaller, and differ between ranks). Resampled mode (``resampled=True``, or fewer windows than ranks) draws
    shards with replacement. Either way chunks are cut into ``window_s`` windows at a random offset and shuffled
    with seeds derived from ``(seed, epoch, rank, worker)``. Validation and test use fixed, non-overlapping
    windows in shard order.

    Parameters
    ----------
    shards : str | Path
        Folder written by ``ieegfm pack``.
    batch_size : int
        Windows per batch per process.
    window_s : float
        Window length (s).
    num_workers : int
        DataLoader workers per process.
    shuffle_buffer : int
        Window shuffle buffer (training).
    resampled : bool
        Draw training shards with replacement (infinite stream) instead of epoch passes.
    samples_per_epoch : int | None
        Training windows per epoch over all ranks; default: the training windows in the manifest.
    seed : int
    pin_memory : bool
        Pin host memory of training batches (faster host-to-GPU copies).
    audio_pooling : {None, 'mean'}
        ``'mean'`` (for ``model.pooling=mean``): training batches carry each window's time-averaged audio,
        (batch, n_features) float32, computed in the DataLoader workers instead of on the GPU: 1/``n_times`` of
        the audio bytes to shuffle, pass between processes, pin and copy (wav2vec2 targets are 1024-d, so audio
        is ~90 % of a window's bytes).
    subject_alpha : float
        Balanced epochs across subjects (:mod:`ieegfm.data.balance`): shares ``∝ windows ** subject_alpha``,
        each window at most once per epoch; 1 (default here; ``data.subject_alpha`` defaults to 0.5): every
        window exactly once. Epoch mode only (resampled mode draws shards uniformly).
    group_by_subject : bool
        Training batches of one subject each, unpadded (see
        :class:`~ieegfm.data.windows.ShuffledWindowBatches`); evaluation batches are padded to ``n_chans``.

    Attributes
    ----------
    audio_step : int
        Brain samples per stored audio value: 1 for frames, the bin length for shards packed with
        ``audio.pool_s`` (training window offsets are then multiples of it).

    Raises
    ------
    InputError
        No manifest, or ``window_s`` not a whole number of the shards' audio bins.

    Notes
    -----
    Batches are dicts: ``brain`` (batch, n_chans, n_times) float16 (training with ``group_by_subject``: the
    batch's subject's own channels), ``audio`` (batch, n_features, n_times) float16
    (``n_times / audio_step`` bin means for pooled shards; training with ``audio_pooling='mean'``: (batch,
    n_features) float32), ``subject`` (batch,) long, ``day`` (batch,) long, ``tmin`` (batch,) float64 (window start in
    its block, s), ``key`` and ``block`` (batch,) numpy str arrays: window and block names (one contract for
    training and evaluation batches, see :func:`ieegfm.data.windows.collate`).
    """

    def __init__(
        self,
        shards: str | Path,
        batch_size: int = 64,
        window_s: float = 3.0,
        num_workers: int = 0,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        audio_pooling: str | None = None,
        subject_alpha: float = 1.0,
        group_by_subject: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(shards)
        self.manifest = read_manifest(shards)
        self.batch_size, self.window_s, self.num_workers = batch_size, window_s, num_workers
        self.shuffle_buffer, self.resampled, self.samples_per_epoch = shuffle_buffer, resampled, samples_per_epoch
        self.seed = seed
        self.pin_memory = pin_memory
        if audio_pooling not in (None, "mean"):
            raise ValueError(f"audio_pooling must be None or 'mean', got {audio_pooling!r}")
        self.audio_pooling = audio_pooling
        self.subject_alpha = check_alpha(subject_alpha)
        self.group_by_subject = group_by_subject
        self.epoch = SharedEpoch(0)
        self.resume = ResumePosition()
        self.sfreq = self.manifest.sfreq
        self.window_n = int(round(window_s * self.sfreq))
        #: brain samples per stored audio bin (``ieegfm pack audio.pool_s``; 1 = audio frames at the brain rate)
        self.audio_step = self.manifest.audio_step
        if self.window_n % self.audio_step:
            raise InputError(
                f"shards={shards}: window_s={window_s} is not a whole number of the shards' audio bins "
                f"({self.audio_step / self.sfreq:g} s, packed with audio.pool_s)"
            )
        self.n_chans = self.manifest.n_chans_max
        self.n_features = self.manifest.n_features
        self.subjects = self.manifest.subject_index()
        #: subject -> ``{"windows", "per_epoch"}`` of the first training epoch's plan (several subjects), else None
        self.subject_plan: dict | None = None
        self._chunk_subjects: tuple | None = None
        #: shards found missing, truncated or cut short by a read error (each once); samples that did not decode
        self.corrupt = CorruptCounter([u for sp in self.manifest.shards for u in self.urls(sp)])

    def check_pooling(self, pooling: str) -> None:
        """Check the stored audio serves the encoder's ``pooling``.

        Raises
        ------
        InputError
            ``pooling='none'`` (time-resolved targets) on shards that store audio bin means (``audio.pool_s``).
        """
        if pooling == "none" and self.audio_step > 1:
            raise InputError(
                f"shards={self.root}: audio is stored as {self.audio_step / self.sfreq:g}-s bin means "
                f"(packed with audio.pool_s); model.pooling=none needs every frame: repack with audio.pool_s=0"
            )

    def urls(self, split: str) -> list[str]:
        """Shard paths of a split."""
        return [str(self.root / s.name) for s in self.manifest.entries(split)]

    def readable(self, split: str) -> tuple[list[ShardEntry], list[str]]:
        """Manifest entries and paths of the shards of ``split`` that are present with their recorded size.

        A shard missing or of another size than ``manifest.json`` records (a truncated copy) is skipped with a
        warning and counted in :attr:`corrupt`; damage that keeps the size is found while reading.

        Raises
        ------
        InputError
            The split has shards and none of them is readable.
        """
        entries, urls = self.manifest.entries(split), self.urls(split)
        keep, problems = [], []
        for e, url in zip(entries, urls):
            path = Path(url)
            size = path.stat().st_size if path.is_file() else None
            if size is None or (e.bytes is not None and size != e.bytes):
                problems.append(f"{path.name}: " + ("missing" if size is None else f"{size} bytes, not {e.bytes}"))
            else:
                keep.append((e, url))
        if problems and not keep:
            raise InputError(
                f"shards={self.root}: none of the {len(urls)} {split} shard(s) is readable ({problems[0]}"
                f"{f'; and {len(problems) - 1} more' if len(problems) > 1 else ''}); expected the files and sizes "
                "manifest.json lists (a copy that did not finish?)"
            )
        for url in set(urls) - {u for _, u in keep}:
            self.corrupt.mark(url)
        if problems:
            logger.warning(
                "skipping %d of %d %s shard(s), missing or truncated: %s", len(problems), len(urls), split,
                "; ".join(problems[:5]),
            )  # fmt: skip
        return [e for e, _ in keep], [u for _, u in keep]

    def n_windows(self, split: str) -> int:
        """Non-overlapping windows of a split (from the manifest)."""
        return self.manifest.n_windows(split)

    def resume_from(self, epoch: int, batches: int) -> None:
        """Fast-forward the training stream to ``batches`` done in ``epoch`` (restored from a checkpoint)."""
        self.resume.set(epoch, batches)
        self.epoch.set_value(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Advance the shared epoch (reseeds shard and window shuffles)."""
        self.epoch.set_value(epoch)

    def _world(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.world_size) if trainer is not None else 1

    def train_dataloader(self) -> TimedWebLoader:
        if not self.urls("train"):
            raise InputError(f"shards={self.root}: no training shards")
        entries, urls = self.readable("train")
        world, workers = self._world(), max(self.num_workers, 1)
        planner = None
        if not self.resampled and all(e.chunk_lengths is not None for e in entries):
            subjects = None
            if len(self.subjects) > 1:  # several subjects: each chunk's, for the balanced plan and its summary
                key = tuple(e.name for e in entries)
                if self._chunk_subjects is None or self._chunk_subjects[0] != key:  # once (the tars' JSON at most)
                    self._chunk_subjects = (key, chunk_subjects(self.manifest, self.root, entries))
                subjects = self._chunk_subjects[1]
            planner = EpochPlanner(
                [e.chunk_lengths for e in entries],
                urls,
                self.window_n,
                self.batch_size,
                self.seed,
                self.audio_step,
                subjects,
                self.subject_alpha,
            )
            plan = planner.plan(0, world, workers)
            batches = plan["batches"]
            per_subject = plan["per_subject"] or {}  # (a view of some subjects: the others' chunks are empty)
            self.subject_plan = {s: v for s, v in per_subject.items() if s in self.subjects} or plan["per_subject"]
            if self.subject_plan:
                logger.info(
                    "epoch plan (data.subject_alpha=%g): %s",
                    self.subject_alpha,
                    ", ".join(f"{s} {v['per_epoch']} of {v['windows']} windows" for s, v in self.subject_plan.items()),
                )
            if batches == 0:
                logger.warning(
                    "%d training windows cannot be split into the same number of batches (of at most %d) on "
                    "each of %d ranks: sampling shards with replacement (data.resampled=true) instead of epoch "
                    "passes",
                    plan["n_windows"],
                    self.batch_size,
                    world,
                )
                planner = None
        if planner is None and self.manifest.subset:
            raise InputError(
                f"shards={self.root}: a subset of the training hours (ieegfm scale) is read in epoch mode only; "
                "expected data.resampled=false and at least as many training windows as ranks"
            )
        if planner is not None:  # epoch mode: every window exactly once per epoch, same batches on every rank
            stages = [PlannedShardList(planner, self.epoch)]
            worker_batches = 0  # per-worker quotas come from the plan
        else:  # resampled mode (or a manifest without chunk lengths): shards drawn with replacement
            if not self.resampled and planner is None and not all(e.chunk_lengths is not None for e in entries):
                logger.warning("manifest without chunk lengths (packed by an older ieegfm): resampled mode")
            windows = self.samples_per_epoch or sum(e.n_windows for e in entries)
            batches = max(windows // (self.batch_size * world), 1)
            worker_batches = math.ceil(batches / workers)
            batches = worker_batches * workers
            stages = [ResampledShardList(urls, self.seed, self.epoch)]
        stages += [
            wds.pipelinefilter(tar_samples)(handler=self.corrupt),
            wds.map(decode_windows_sample, handler=self.corrupt),
            ShuffledWindowBatches(
                self.window_n,
                self.n_chans,
                self.subjects,
                self.batch_size,
                self.shuffle_buffer,
                self.seed,
                self.epoch,
                planner,
                self.audio_pooling,
                self.audio_step,
                self.group_by_subject,
            ),
            EpochBatches(worker_batches, self.epoch, self.resume, planner),
        ]
        dataset = wds.DataPipeline(*stages)
        loader = TimedWebLoader(  # fetch_s: time blocked waiting for batches (perf/data_wait_fraction)
            dataset,
            batch_size=None,
            shuffle=False,
            collate_fn=identity,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )
        loader.num_batches = batches
        return loader

    def eval_dataloader(self, split: str) -> wds.WebLoader:
        """Fixed non-overlapping windows of ``split``, in shard order.

        Every rank reads all windows of the split: retrieval needs all candidates anyway, every rank then runs
        the same number of validation steps (DDP synchronises buffers in each forward; uneven ranks hang), and
        the metrics are identical on all ranks without a gather.
        """
        if not self.urls(split):
            raise InputError(f"shards={self.root}: no {split!r} shards (see manifest.json 'splits')")
        _, urls = self.readable(split)
        stages = [
            wds.SimpleShardList(urls),
            wds.pipelinefilter(tar_samples)(handler=self.corrupt),
            wds.map(decode_windows_sample, handler=self.corrupt),
        ]
        if self.manifest.subset.get("subjects"):  # a view of some subjects: the others' chunks are not its own
            kept = set(self.subjects)
            stages.append(wds.select(lambda sample: sample["meta"]["subject"] in kept))
        stages += [
            SliceWindows(self.window_n, self.n_chans, self.subjects, self.audio_step),
            wds.batched(self.batch_size, collation_fn=collate, partial=True),
        ]
        return wds.WebLoader(
            wds.DataPipeline(*stages), batch_size=None, shuffle=False, collate_fn=identity, num_workers=0
        )

    def val_dataloader(self) -> wds.WebLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> wds.WebLoader:
        return self.eval_dataloader("test")
