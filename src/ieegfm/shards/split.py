"""Train/val/test split by recording block, with guard gaps between splits.

Splitting by block follows arXiv 2512.15830 (train/val/test by 2-hour files). Blocks of one subject are sorted
by start time; the evaluation blocks (val and test) are spread evenly over the recording (so that each day and
both day and night can be represented), the rest is training data. Where two blocks of different splits touch
in time (gap shorter than ``guard_s``), ``guard_s`` seconds are cut from the evaluation side of the boundary,
so no window of one split shares a sample or audio context with a window of another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ieegfm.errors import ConfigError


@dataclass
class BlockSpan:
    """A block's place in time: ``start`` (UTC) and ``duration`` (s), keyed by ``name`` within ``subject``."""

    name: str
    subject: str
    start: dt.datetime
    duration: float


def assign_splits(spans: list[BlockSpan], val: float, test: float) -> dict[str, str]:
    """Assign each block to ``train``, ``val`` or ``test``.

    Parameters
    ----------
    spans : list of BlockSpan
    val, test : float
        Fractions of each subject's blocks (rounded, at least one block when the fraction is > 0).

    Returns
    -------
    split : dict
        Block name -> split.

    Raises
    ------
    ConfigError
        A subject has too few blocks for the requested splits (names the subject and ``split.val``/``split.test``).
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"split.val={val}, split.test={test}: expected fractions in [0, 1) summing to < 1")
    out: dict[str, str] = {}
    for subject in sorted({s.subject for s in spans}):
        own = sorted((s for s in spans if s.subject == subject), key=lambda s: (s.start, s.name))
        n = len(own)
        n_test = 0 if test == 0 else max(1, int(round(test * n)))
        n_val = 0 if val == 0 else max(1, int(round(val * n)))
        if n_test + n_val >= n:
            raise ConfigError(
                f"subject {subject!r} has {n} block(s): split.val={val} and split.test={test} "
                f"need {n_test + n_val + 1} (one training block at least); add blocks or set "
                "split.val=0 split.test=0"
            )
        k = n_test + n_val
        positions = [int(np.floor((i + 0.5) * n / k)) for i in range(k)] if k else []
        roles, left = [], {"test": n_test, "val": n_val}
        for i in range(k):  # alternate test / val along the recording while both remain
            role = "test" if (i % 2 == 0 and left["test"]) or not left["val"] else "val"
            left[role] -= 1
            roles.append(role)
        for s in own:
            out[s.name] = "train"
        for pos, role in zip(positions, roles):
            out[own[pos].name] = role
    return out


def guard_trims(spans: list[BlockSpan], split: dict[str, str], guard_s: float) -> dict[str, tuple[float, float]]:
    """Seconds to cut from the start and end of each block at split boundaries.

    Parameters
    ----------
    spans : list of BlockSpan
    split : dict
        Block name -> split (from :func:`assign_splits`).
    guard_s : float
        Guard gap (s): at least one window plus the audio model's context.

    Returns
    -------
    trims : dict
        Block name -> ``(head_s, tail_s)``. The evaluation side (val/test; the later block when both are
        evaluation splits) is trimmed so that the blocks end up at least ``guard_s`` apart.
    """
    trims = {s.name: [0.0, 0.0] for s in spans}
    for subject in {s.subject for s in spans}:
        own = sorted((s for s in spans if s.subject == subject), key=lambda s: (s.start, s.name))
        for a, b in zip(own[:-1], own[1:]):
            if split[a.name] == split[b.name]:
                continue
            gap = (b.start - a.start).total_seconds() - a.duration
            need = guard_s - gap
            if need <= 0:
                continue
            if split[a.name] != "train" and split[b.name] == "train":
                trims[a.name][1] = max(trims[a.name][1], need)
            else:
                trims[b.name][0] = max(trims[b.name][0], need)
    return {k: (v[0], v[1]) for k, v in trims.items()}
