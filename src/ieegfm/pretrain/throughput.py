"""Training throughput: windows per second and the fraction of step time spent waiting for data."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class ThroughputMonitor(Callback):
    """Log ``perf/windows_per_s`` (all ranks) and ``perf/data_wait_fraction`` every ``log_every_n_steps``.

    The wait is the time from the end of one training batch to the start of the next (the DataLoader's ``next``,
    plus host-to-device copy); the step time runs from batch end to batch end. On CUDA the step end is
    synchronised before it is timed, so asynchronous kernels are counted in the step, not in the next wait (tried:
    synchronising only at the window ends gave the same throughput on an H100 within noise, but the blocking
    host-to-device copy then shows up as "wait", inflating the data-stall figure from ~0.10 to ~0.16).

    Parameters
    ----------
    log_every_n_steps : int
        Aggregation window (steps).
    """

    def __init__(self, log_every_n_steps: int = 20) -> None:
        self.every = max(int(log_every_n_steps), 1)
        self._last_end: float | None = None
        self._start: float | None = None
        self._wait = self._total = 0.0
        self._windows = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            self._wait += self._start - self._last_end

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
        if trainer.global_step % self.every == 0 and self._total > 0:
            pl_module.log("perf/windows_per_s", self._windows / self._total, rank_zero_only=True)
            pl_module.log("perf/data_wait_fraction", self._wait / self._total, rank_zero_only=True)
            self._wait = self._total = 0.0
            self._windows = 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # validation time is neither step nor wait
