"""BIDS ``events.tsv``: what happened when during a recording (here: the sentences of a listening task)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ieegfm.errors import InputError
from ieegfm.io.tsv import read_tsv


@dataclass(frozen=True)
class Event:
    """One row of an ``events.tsv``.

    Attributes
    ----------
    onset : float
        Seconds from the start of the iEEG recording (BIDS convention).
    duration : float
        Seconds (>= 0).
    trial_type : str
        E.g. ``sentence``.
    value : str
        E.g. the sentence text.
    """

    onset: float
    duration: float
    trial_type: str
    value: str


def read_events_tsv(path: str | Path) -> list[Event]:
    """Read a BIDS ``events.tsv`` (columns ``onset``, ``duration``; optional ``trial_type``, ``value``).

    Parameters
    ----------
    path : str | Path

    Returns
    -------
    events : list of Event
        Sorted by onset.

    Raises
    ------
    InputError
        Missing file or columns, or a row whose onset/duration is not a finite number (``n/a`` duration is 0),
        naming the file and row.
    """
    return _read_timed_tsv(path, "events file", "a BIDS events.tsv", None)


def read_words_tsv(path: str | Path) -> list[Event]:
    """Read a word transcript (columns ``onset``, ``duration``, ``word``, or ``word``, ``start``, ``end`` as the
    Podcast ECoG dataset's ``stimuli/*/transcript.tsv``; seconds from the audio file's start).

    Returns
    -------
    words : list of Event
        ``trial_type='word'``, ``value`` the word; sorted by onset.

    Raises
    ------
    InputError
        As :func:`read_events_tsv`, or no ``word`` column.
    """
    return _read_timed_tsv(path, "words file", "a word transcript", "word")


def _read_timed_tsv(path: str | Path, what: str, expected: str, word_col: str | None) -> list[Event]:
    path = Path(path)
    needed = ("onset", "duration") + ((word_col,) if word_col else ())
    if word_col and "onset" not in _columns(path):  # word, start, end (s): a transcript's own layout
        needed = (word_col, "start", "end")
    rows = read_tsv(path, what, needed, expected)
    events = []
    for i, r in rows:
        try:
            if "onset" in needed:
                onset = float(r["onset"])
                duration = 0.0 if r["duration"] in ("", "n/a") else float(r["duration"])
            else:
                onset = float(r["start"])
                duration = float(r["end"]) - onset
        except ValueError:
            cells = (r["onset"], r["duration"]) if "onset" in needed else (r["start"], r["end"])
            names = "onset / duration" if "onset" in needed else "start / end"
            raise InputError(f"{path}, row {i}: {names} {cells[0]!r} / {cells[1]!r} are not numbers (s)") from None
        if not (math.isfinite(onset) and math.isfinite(duration) and duration >= 0):
            raise InputError(f"{path}, row {i}: expected a finite onset and a duration >= 0 (s)")
        if word_col:
            events.append(Event(onset, duration, "word", r[word_col]))
        else:
            events.append(Event(onset, duration, r.get("trial_type", ""), r.get("value", "")))
    return sorted(events, key=lambda e: e.onset)


def _columns(path: Path) -> list[str]:
    """The header line's column names ([] when the file cannot be read: :func:`read_tsv` then says why)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return [c.strip() for c in f.readline().rstrip("\r\n").split("\t")]
    except OSError:
        return []
