"""Pack phase 0: the recording blocks a pack reads, from a recordings table or a BIDS root (one or the other)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ieegfm.errors import ConfigError
from ieegfm.io.bids import AudioSource, discover_blocks
from ieegfm.io.recordings import Block, read_recordings, write_recordings

logger = logging.getLogger(__name__)


def input_blocks(cfg) -> tuple[list[Block], str]:
    """``(blocks, where)``: the blocks of ``cfg.recordings`` or ``cfg.bids_root`` and the name messages give it.

    Raises
    ------
    ConfigError
        Both or neither of ``recordings=`` and ``bids_root=``.
    InputError
        As :func:`~ieegfm.io.recordings.read_recordings` or :func:`~ieegfm.io.bids.discover_blocks`.
    """
    table, root = cfg.get("recordings"), cfg.get("bids_root")
    if (table is None) == (root is None):
        raise ConfigError(
            "give recordings=TABLE.tsv or bids_root=DIR (one of them)"
            + (f"; got both ({table}, {root})" if table is not None else "")
        )
    if table is not None:
        return read_recordings(table), str(table)
    a = cfg.audio
    audio = AudioSource(a.source, a.pattern, a.get("stimulus"), a.get("onset"), a.get("transcript"))
    tic = time.perf_counter()
    blocks = discover_blocks(
        root,
        audio,
        subjects=cfg.get("subjects"),
        sessions=cfg.get("sessions"),
        tasks=cfg.get("tasks"),
        runs=cfg.get("runs"),
        acquisitions=cfg.get("acquisitions"),
        start_from=cfg.start_from,
        space=cfg.get("space"),
        timezone=cfg.timezone,
    )
    logger.info(
        "bids_root=%s: %d runs of %d subjects discovered in %.2f s",
        root,
        len(blocks),
        len({b.subject for b in blocks}),
        time.perf_counter() - tic,
    )
    return blocks, str(root)


def recordings(cfg) -> Path:
    """``ieegfm recordings``: write the recordings table a BIDS root holds (every choice made: audio file and onset,
    start time, channels, events, words and electrodes files) to ``cfg.out``.

    Returns
    -------
    path : Path
        The table written.

    Raises
    ------
    ConfigError, InputError
        As :func:`input_blocks` (``bids_root=`` is required).
    """
    if cfg.get("bids_root") is None:
        raise ConfigError("ieegfm recordings needs bids_root=DIR (a BIDS-iEEG dataset)")
    blocks, _ = input_blocks(cfg)
    return write_recordings(blocks, cfg.out)
