"""The training DataLoader: a ``webdataset.WebLoader`` that measures how long the training loop waits for data."""

from __future__ import annotations

import time

import webdataset as wds


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
