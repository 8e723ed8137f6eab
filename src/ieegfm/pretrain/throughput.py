"""Training throughput: windows per second and the fraction of step time spent waiting for data."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class ThroughputMonitor(Callback):
    """Log windows/s and where the time between steps goes, every ``log_every_n_steps`` steps.

    Logged (rank 0): ``perf/windows_per_s`` (all ranks together); ``perf/data_wait_fraction``, the fraction of
    step time the loop spends blocked on data: waiting in the DataLoader's ``next()`` (``fetch_s`` of a
    :class:`~ieegfm.data.loader.FetchTiming` loader) plus the host time of the host-to-device copy
    (``transfer_s`` of the module); ``perf/step_gap_fraction``, the whole gap between one batch's end and the next
    batch's start, i.e. the data wait plus Lightning's own per-step bookkeeping (logging, progress, hooks), which
    an in-memory dataset pays as well. A step runs from batch end to batch end. On CUDA the step end is
    synchronised before it is timed, so asynchronous kernels are counted in the step, not in the next gap
    (synchronising only at the window ends gave the same throughput on an H100 within noise, but blurs the
    split). Loaders without ``fetch_s`` count the whole gap as data wait.

    Parameters
    ----------
    log_every_n_steps : int
        Aggregation window (steps).
    """

    def __init__(self, log_every_n_steps: int = 20) -> None:
        self.every = max(int(log_every_n_steps), 1)
        self._last_end: float | None = None
        self._start: float | None = None
        self._gap = self._wait = self._total = 0.0
        self._windows = 0
        self._marks: tuple[float, float] | None = None

    @staticmethod
    def _data_seconds(trainer: L.Trainer, pl_module: L.LightningModule) -> float | None:
        fetch = getattr(trainer.train_dataloader, "fetch_s", None)
        return None if fetch is None else fetch + getattr(pl_module, "transfer_s", 0.0)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            gap = self._start - self._last_end
            self._gap += gap
            data = self._data_seconds(trainer, pl_module)
            if data is None or self._marks is None:
                self._wait += gap
            else:
                self._wait += min(data - self._marks[0], gap)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        now = time.perf_counter()
        if self._last_end is not None:
            self._total += now - self._last_end
            self._windows += len(batch["brain"]) * trainer.world_size
        self._last_end = now
        data = self._data_seconds(trainer, pl_module)
        self._marks = None if data is None else (data, now)
        if trainer.global_step % self.every == 0 and self._total > 0:
            pl_module.log("perf/windows_per_s", self._windows / self._total, rank_zero_only=True)
            pl_module.log("perf/data_wait_fraction", self._wait / self._total, rank_zero_only=True)
            pl_module.log("perf/step_gap_fraction", self._gap / self._total, rank_zero_only=True)
            self._gap = self._wait = self._total = 0.0
            self._windows = 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # validation time is neither step nor wait
        self._marks = None
