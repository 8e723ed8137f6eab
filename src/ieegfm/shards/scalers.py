"""Pack phase 5: the scaling fitted on the work files, in bounded memory (10-min slices).

Brain: robust scaling (median/IQR) per subject fitted on its training blocks only (``preprocess.scale_by=train``),
or per subject and local recording day / per block on that unit's own samples of every split (``day`` / ``block``:
label-free, divides out gain drift). Audio: z-scoring per feature fitted on every subject's training blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ieegfm.preprocess import RobustScaler, StandardScaler
from ieegfm.shards.clock import SiteClock
from ieegfm.shards.headers import BlockInfo

SLICE_S = 600.0


@dataclass
class Scalers:
    """The fitted scalers of one pack.

    Attributes
    ----------
    subjects : dict
        Subject -> brain scaler fitted on its training blocks (always fitted; recorded per subject).
    audio : StandardScaler
        Audio targets, fitted on all training blocks.
    unit_of_block : dict
        Block id -> the unit whose scaler transforms it (a subject, ``<subject>/day<k>`` or the block id).
    units : dict
        Unit -> scaler, for ``scale_by`` day or block (empty for ``train``).
    """

    subjects: dict[str, RobustScaler]
    audio: StandardScaler
    unit_of_block: dict[str, str]
    units: dict[str, RobustScaler] = field(default_factory=dict)

    def brain(self, block_id: str) -> RobustScaler:
        """The scaler of a block's brain signal."""
        unit = self.unit_of_block[block_id]
        return self.units[unit] if unit in self.units else self.subjects[unit]


def _slices(work: Path, block_id: str, sfreq: float, audio: bool = True):
    """``(brain, audio | None, valid)`` slices of :data:`SLICE_S` of a block's work files (valid ones only)."""
    brain = np.load(work / f"{block_id}.brain.npy", mmap_mode="r")
    y = np.load(work / f"{block_id}.audio.npy", mmap_mode="r") if audio else None
    valid = np.load(work / f"{block_id}.valid.npy")
    step = int(SLICE_S * sfreq)
    for i in range(0, brain.shape[1], step):
        v = valid[i : i + step]
        if v.any():
            yield np.asarray(brain[:, i : i + step]), None if y is None else np.asarray(y[:, i : i + step]), v


def fit_scalers(infos: list[BlockInfo], split: dict[str, str], work: Path, pcfg, clock: SiteClock) -> Scalers:
    """Phase 5: fit the brain and audio scalers on the work files (see module docstring)."""
    sfreq = float(pcfg.sfreq)
    audio = StandardScaler()
    subjects: dict[str, RobustScaler] = {}
    for s in sorted({i.block.subject for i in infos}):
        scaler = RobustScaler()
        for info in infos:
            if info.block.subject != s or split[info.id] != "train":
                continue
            for x, y, v in _slices(work, info.id, sfreq):
                scaler.partial_fit(x, valid=v)
                audio.partial_fit(y, valid=v)
        subjects[s] = scaler

    def unit(info: BlockInfo) -> str:
        if pcfg.scale_by == "train":
            return info.block.subject
        if pcfg.scale_by == "block":
            return info.id
        return f"{info.block.subject}/day{clock.day(info.block.subject, info.start)}"

    unit_of_block = {info.id: unit(info) for info in infos}
    units = {u: RobustScaler() for u in set(unit_of_block.values())} if pcfg.scale_by != "train" else {}
    for info in infos if units else []:  # every split: the unit's own statistics (label-free)
        for x, _, v in _slices(work, info.id, sfreq, audio=False):
            units[unit_of_block[info.id]].partial_fit(x, valid=v)
    return Scalers(subjects, audio, unit_of_block, units)
