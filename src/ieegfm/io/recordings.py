"""The recordings table: one row per recording block (an iEEG file and the ambient audio heard during it).

The table is tab-separated with the columns ``subject``, ``session``, ``ieeg``, ``audio``, ``start_time``
(paths relative to the table; ``start_time`` the ISO 8601 wall-clock start of the audio, in UTC when no
offset is given). Optional columns: ``channels`` (a BIDS ``channels.tsv``; by default the BIDS sibling
``*_channels.tsv`` of the iEEG file is used when it exists), ``words`` (a word-level transcript), ``events``
(a BIDS ``events.tsv``, onsets in s from the iEEG start; packed with the windows, e.g. task sentences) and
``electrodes`` (a BIDS ``electrodes.tsv``: contact positions, recorded per channel in the manifest) and
``audio_onset`` (s): the audio is a stimulus that starts this many seconds after the iEEG does (BIDS ``events.tsv``
onset of a ``stim_file``); ``start_time`` is then the start of the iEEG (BIDS ``scans.tsv`` ``acq_time``, which wins
over the file header's ``meas_date``, as in mne-bids' ``read_raw_bids``), the audio need not cover the block, and
only the stretch it covers is packed. ``start_time`` may be ``header``: the iEEG file header's ``meas_date``.
:func:`write_recordings` writes such a table (``ieegfm recordings``); :mod:`ieegfm.io.bids` discovers one.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ieegfm.errors import InputError
from ieegfm.io.tsv import read_tsv

REQUIRED_COLUMNS = ("subject", "session", "ieeg", "audio", "start_time")
#: Optional file columns, in the order :func:`write_recordings` writes them.
FILE_COLUMNS = ("channels", "words", "events", "electrodes")
#: ``start_time`` of a row whose iEEG file header's ``meas_date`` is the start.
HEADER_TIME = "header"


@dataclass(frozen=True)
class Block:
    """One recording block.

    Attributes
    ----------
    subject, session : str
        Labels (BIDS style, without the ``sub-``/``ses-`` prefix).
    ieeg : Path
        iEEG file (EDF, BDF, FIF, BrainVision ``.vhdr``).
    audio : Path
        Audio file heard during the block (WAV, FLAC, anything soundfile reads).
    start_time : datetime.datetime | None
        Wall-clock start of the audio (timezone-aware, UTC); with ``audio_onset``, of the iEEG; None: the iEEG
        file header's ``meas_date``.
    channels : Path | None
        BIDS ``channels.tsv`` (types and good/bad status), if any.
    words : Path | None
        Word-level transcript (onset, duration, word), if any.
    events : Path | None
        BIDS ``events.tsv`` (onset, duration, trial_type, value), if any.
    electrodes : Path | None
        BIDS ``electrodes.tsv`` (name, x, y, z) of the subject's contacts, if any.
    audio_onset : float | None
        The audio (a stimulus) starts this many seconds after the iEEG; None: ``start_time`` places it.
    row : int
        1-based data row in the table (for error messages).
    """

    subject: str
    session: str
    ieeg: Path
    audio: Path
    start_time: dt.datetime | None
    channels: Path | None = None
    words: Path | None = None
    events: Path | None = None
    electrodes: Path | None = None
    audio_onset: float | None = None
    row: int = 0

    @property
    def name(self) -> str:
        """Stable identifier: the iEEG file name without extension."""
        return self.ieeg.name.split(".")[0]


def parse_time(value: str, where: str) -> dt.datetime:
    """Parse an ISO 8601 time; a naive time is taken as UTC.

    Raises
    ------
    InputError
        The value is not ISO 8601 (names ``where``).
    """
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return t.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # not ISO 8601, or out of range once in UTC (year 1 at +05:00)
        raise InputError(
            f"{where}: start_time {value!r} is not an ISO 8601 time (expected e.g. 2026-03-02T08:00:00+00:00)"
        ) from None


def _file(root: Path, cell: str, what: str, problems: list[str], required: bool) -> Path | None:
    """The file a table cell names (relative to the table), or None (and a problem) when it is not a file."""
    if not cell:
        if required:
            problems.append(f"{what}: empty")
        return None
    shown = cell
    try:
        p = (root / cell).resolve()
        if p.is_file():
            return p
        shown = str(p)
    except (OSError, ValueError):  # a NUL byte, a name too long, a loop of links
        pass
    problems.append(
        f"{what} {shown if shown.isprintable() else repr(shown)} not found (paths are relative to the table)"
    )
    return None


def _sibling_channels_tsv(ieeg: Path) -> Path | None:
    stem = ieeg.name.split(".")[0]
    if stem.endswith("_ieeg"):
        cand = ieeg.with_name(stem[: -len("_ieeg")] + "_channels.tsv")
        if cand.is_file():
            return cand
    cand = ieeg.with_name(stem + "_channels.tsv")
    return cand if cand.is_file() else None


def read_recordings(path: str | Path) -> list[Block]:
    """Read and check a recordings table.

    Parameters
    ----------
    path : str | Path
        Tab-separated table (see module docstring).

    Returns
    -------
    blocks : list of Block
        Sorted by subject, then start time.

    Raises
    ------
    InputError
        Missing table, missing columns, empty table, missing iEEG/audio/channels files (all listed at once),
        unparsable times, the same iEEG file twice.
    """
    path = Path(path)
    rows = read_tsv(path, "recordings table", REQUIRED_COLUMNS, "one row per recording block")
    if not rows:
        raise InputError(f"recordings table {path}: no rows; expected one row per recording block")
    root = path.parent
    blocks: list[Block] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for i, r in rows:
        where = f"{path}, row {i}"
        empty = [c for c in REQUIRED_COLUMNS if not r[c]]
        if empty:
            problems.append(f"{where}: empty {', '.join(empty)}")
            continue
        files = {}
        kinds = ("ieeg", "audio", "channels", "words", "events", "electrodes")
        for kind in kinds:
            files[kind] = _file(root, r.get(kind, ""), f"{where}: {kind} file", problems, kind in ("ieeg", "audio"))
        ieeg, audio, channels, words, events, electrodes = (files[k] for k in kinds)
        if ieeg is None or audio is None:
            continue
        if channels is None and not r.get("channels"):
            channels = _sibling_channels_tsv(ieeg)
        if ieeg in seen:
            problems.append(f"{where}: ieeg file {ieeg} listed twice")
        seen.add(ieeg)
        try:
            start = None if r["start_time"].strip() == HEADER_TIME else parse_time(r["start_time"], where)
            onset = _onset(r.get("audio_onset", ""), where)
        except InputError as err:
            problems.append(str(err))
            continue
        if start is None and onset is None:
            problems.append(f"{where}: start_time={HEADER_TIME} needs an audio_onset (s after the iEEG's start)")
            continue
        blocks.append(
            Block(
                subject=r["subject"],
                session=r["session"],
                ieeg=ieeg,
                audio=audio,
                start_time=start,
                channels=channels,
                words=words,
                events=events,
                electrodes=electrodes,
                audio_onset=onset,
                row=i,
            )
        )
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise InputError("; ".join(problems[:3]) + more)
    return sort_blocks(blocks)


def sort_blocks(blocks: list[Block]) -> list[Block]:
    """By subject, then start time (rows timed by their file header last, by name), then name."""
    never = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    return sorted(blocks, key=lambda b: (b.subject, b.start_time or never, b.name))


def _onset(cell: str, where: str) -> float | None:
    if cell.strip() in ("", "n/a"):
        return None
    try:
        onset = float(cell)
    except ValueError:
        onset = math.nan
    if not math.isfinite(onset):
        raise InputError(f"{where}: audio_onset {cell!r} is not a number (s after the iEEG's start)")
    return onset


def write_recordings(blocks: list[Block], path: str | Path) -> Path:
    """Write ``blocks`` as a recordings table that :func:`read_recordings` reads back to the same blocks.

    Paths are written relative to the table's folder; ``start_time`` in ISO 8601 with its UTC offset (or
    ``header``); the optional columns only when a block has them. Written under a temporary name, then moved.

    Parameters
    ----------
    blocks : list of Block
    path : str | Path
        The ``.tsv`` to write (its folder is created).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    extra = [c for c in FILE_COLUMNS if any(getattr(b, c) is not None for b in blocks)]
    extra += ["audio_onset"] if any(b.audio_onset is not None for b in blocks) else []
    cols = list(REQUIRED_COLUMNS) + extra

    def cell(b: Block, c: str) -> str:
        v = getattr(b, c)
        if c == "start_time":
            return HEADER_TIME if v is None else v.isoformat()
        if c == "audio_onset":
            return "n/a" if v is None else repr(float(v))
        if isinstance(v, Path):
            return Path(os.path.relpath(v, root)).as_posix()
        return "" if v is None else str(v)

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(cols)
        for b in blocks:
            w.writerow([cell(b, c) for c in cols])
    tmp.replace(path)
    return path


def read_channels_tsv(path: Path) -> dict[str, dict[str, str]]:
    """Read a BIDS ``channels.tsv`` into ``{name: {column: value}}``.

    Raises
    ------
    InputError
        As :func:`ieegfm.io.tsv.read_tsv` (missing file, not UTF-8, no ``name`` column...).
    """
    rows = read_tsv(path, "channels file", ("name",), "a BIDS channels.tsv")
    return {r["name"]: r for _, r in rows}
