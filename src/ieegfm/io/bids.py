"""A BIDS-iEEG dataset [1]_ as recording blocks: one :class:`~ieegfm.io.recordings.Block` per iEEG run.

Discovery reads sidecars only, never a data file (a dataset of placeholders, as bids-examples, is discovered; the
pack's header phase then reports each unreadable file): runs are found with mne-bids [2]_ (``find_matching_paths``,
datatype and suffix ``ieeg``), and for each run

- the start: ``scans.tsv`` ``acq_time`` of the run (naive times are the site's local clock, ``timezone=``; a ``Z``
  or an offset is honoured), or, with ``start_from=header``, the data file header's ``meas_date``;
- channel types and ``status=bad``: the run's ``channels.tsv`` (non-neural channels by type, not by name);
- positions: the subject's ``electrodes.tsv`` and ``coordsystem.json`` (session first; of several spaces, ``space=``
  or a template ``MNI*`` space, else the first);
- task events: the run's ``events.tsv`` (onsets on the iEEG clock);
- the audio (:class:`AudioSource`): ``file``, a per-run file of the session matched by ``audio.pattern`` and the
  run's entities (with the sibling ``*_words.tsv`` transcript when there is one); or ``stimulus``, the ``stim_file``
  of the run's ``events.tsv`` (under ``stimuli/``; onset of its first event) or ``audio.stimulus`` at
  ``audio.onset`` s after the start, with ``audio.transcript`` (``word``, ``start``, ``end`` from the stimulus
  onset) as its words.

The blocks written with :func:`ieegfm.io.recordings.write_recordings` (``ieegfm recordings``) read back to the same
blocks, so a BIDS root and its table pack to the same shards.

References
----------
.. [1] Holdgraf, C., et al. (2019). iEEG-BIDS, extending the Brain Imaging Data Structure specification to human
       intracranial electrophysiology. Scientific Data, 6, 102.
.. [2] Appelhoff, S., et al. (2019). MNE-BIDS: Organizing electrophysiological data into the BIDS format and
       facilitating their analysis. Journal of Open Source Software, 4(44), 1896.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ieegfm.errors import ConfigError, InputError
from ieegfm.io.ieeg import READERS
from ieegfm.io.recordings import Block, sort_blocks
from ieegfm.io.tsv import read_tsv

__all__ = ["AUDIO_SOURCES", "START_FROM", "AudioSource", "discover_blocks"]

#: ``audio.source=``: a per-run audio file next to the iEEG, or a stimulus file with an onset.
AUDIO_SOURCES = ("file", "stimulus")
#: ``start_from=``: ``scans.tsv`` ``acq_time``, or the data file header's ``meas_date``.
START_FROM = ("scans", "header")
#: Data-file extensions of the ``ieeg`` suffix in BIDS (and BDF, FIF, which MNE reads too).
_DATA_EXTENSIONS = (".edf", ".bdf", ".vhdr", ".set", ".fif", ".mefd", ".nwb")


@dataclass(frozen=True)
class AudioSource:
    """Where a run's audio comes from.

    Attributes
    ----------
    source : str
        ``file`` or ``stimulus`` (:data:`AUDIO_SOURCES`).
    pattern : str
        ``file``: glob of the audio file's name, among the session's files that carry the run's entities.
    stimulus : str | None
        ``stimulus``: the file (relative to the root); None: the ``stim_file`` of the run's ``events.tsv``.
    onset : float | None
        ``stimulus``: seconds after the recording start; None: the onset of the stim_file's first event (0 with
        ``stimulus`` given).
    transcript : str | None
        ``stimulus``: a words table (relative to the root; ``word``, ``start``, ``end`` in s from the onset).
    """

    source: str = "file"
    pattern: str = "*_audio.wav"
    stimulus: str | None = None
    onset: float | None = None
    transcript: str | None = None


def discover_blocks(
    root: str | Path,
    audio: AudioSource,
    *,
    subjects=None,
    sessions=None,
    tasks=None,
    runs=None,
    acquisitions=None,
    start_from: str = "scans",
    space: str | None = None,
    timezone: str = "UTC",
) -> list[Block]:
    """Every iEEG run of a BIDS root (those the entity filters keep) as a recording block.

    Parameters
    ----------
    root : str | Path
        The BIDS root (``dataset_description.json``, ``sub-*/``).
    audio : AudioSource
    subjects, sessions, tasks, runs, acquisitions : list of str | None
        Entity labels to keep (without ``sub-`` etc.); None keeps all.
    start_from : str
        ``scans`` or ``header`` (:data:`START_FROM`).
    space : str | None
        ``space-`` entity of the ``electrodes.tsv`` to use when a subject has several.
    timezone : str
        IANA zone of a naive ``acq_time``.

    Returns
    -------
    blocks : list of Block
        Sorted as :func:`~ieegfm.io.recordings.read_recordings` sorts.

    Raises
    ------
    InputError
        Not a folder, no iEEG run (after the filters), a data format MNE cannot read, a run without ``acq_time``
        (``start_from=scans``), an ``audio.pattern`` that matches nothing (or several files), a stimulus file
        missing, ``events.tsv`` naming several stimulus files, a stimulus onset outside the recording (as
        ``RecordingDuration`` of the run's ``_ieeg.json`` states). Each names the file or key.
    ConfigError
        An unknown ``audio.source`` or ``start_from``.
    """
    import mne_bids

    root = Path(root)
    if audio.source not in AUDIO_SOURCES:
        raise ConfigError(f"audio.source={audio.source!r}: expected one of {list(AUDIO_SOURCES)}")
    if start_from not in START_FROM:
        raise ConfigError(f"start_from={start_from!r}: expected one of {list(START_FROM)}")
    if not root.is_dir():
        raise InputError(f"bids_root={root}: not a folder; expected a BIDS dataset (dataset_description.json, sub-*/)")
    tz = ZoneInfo(timezone)
    filters = {"subjects": subjects, "sessions": sessions, "tasks": tasks, "runs": runs, "acquisitions": acquisitions}
    filters = {k: [str(x) for x in v] for k, v in filters.items() if v is not None}
    paths = mne_bids.find_matching_paths(
        root, datatypes="ieeg", suffixes="ieeg", extensions=list(_DATA_EXTENSIONS), **filters
    )
    paths = [p for p in paths if p.fpath.is_file() or p.fpath.is_dir()]  # .mefd is a folder
    if not paths:
        shown = ", ".join(f"{k}={v}" for k, v in filters.items())
        raise InputError(
            f"bids_root={root}: no iEEG recording (sub-*/[ses-*/]ieeg/*_ieeg.<{'|'.join(e[1:] for e in _DATA_EXTENSIONS)}>)"
            + (f" for {shown}" if shown else "")
            + "; expected a BIDS-iEEG dataset"
        )
    scans: dict[Path, dict[str, str]] = {}
    files: dict[Path, list[Path]] = {}
    return sort_blocks([_block(root, p, audio, start_from, space, tz, scans, files) for p in paths])


def _block(
    root: Path, bp, audio: AudioSource, start_from: str, space: str | None, tz, scans: dict, files: dict
) -> Block:
    """One run's block (``scans``: scans.tsv path -> {file stem: acq_time}; ``files``: session folder -> its files;
    both filled as read)."""
    data = Path(bp.fpath)
    if not data.name.lower().endswith(READERS):
        raise InputError(
            f"{data}: format {data.suffix or data.name} cannot be read by MNE here; expected one of {list(READERS)} "
            "(convert it, e.g. with mne-bids' write_raw_bids)"
        )
    session = bp.session or "n/a"
    base = bp.copy().update(suffix=None, extension=None, datatype="ieeg")
    prefix = Path(base.basename).name  # sub-X[_ses-Y]_task-Z[_acq-A][_run-R]
    sibling = _sibling(data, prefix)
    channels, events = sibling("channels.tsv"), sibling("events.tsv")
    start = None if start_from == "header" else _acq_time(root, data, bp, tz, scans)
    if audio.source == "file":
        wav = _audio_file(data, prefix, audio.pattern, files)
        words = _words_beside(wav)
        onset = 0.0
    else:
        wav, onset = _stimulus(root, data, events, audio)
        words = _resolve(root, audio.transcript, "audio.transcript") if audio.transcript else None
        _check_onset(data, onset)
    return Block(
        subject=bp.subject,
        session=session,
        ieeg=data.resolve(),
        audio=wav.resolve(),
        start_time=start,
        channels=channels,
        words=words,
        events=events,
        electrodes=_electrodes(root, bp, space),
        audio_onset=onset,
    )


def _sibling(data: Path, prefix: str):
    def find(suffix: str) -> Path | None:
        p = data.with_name(f"{prefix}_{suffix}")
        return p.resolve() if p.is_file() else None

    return find


def _acq_time(root: Path, data: Path, bp, tz, cache: dict) -> dt.datetime:
    """The run's ``acq_time`` from its subject's (session's) ``scans.tsv``."""
    folder = root / f"sub-{bp.subject}" / (f"ses-{bp.session}" if bp.session else "")
    table = folder / (f"sub-{bp.subject}" + (f"_ses-{bp.session}" if bp.session else "") + "_scans.tsv")
    if table not in cache:
        rows = read_tsv(table, "scans file", ("filename", "acq_time"), "a BIDS scans.tsv") if table.is_file() else []
        cache[table] = {Path(r["filename"]).name.split(".")[0]: r["acq_time"] for _, r in rows}
    value = cache[table].get(data.name.split(".")[0], "")
    if value in ("", "n/a"):
        where = table if table.is_file() else f"{table} (no such file)"
        raise InputError(
            f"{where}: no acq_time for {data.name}; expected the recording's start (YYYY-MM-DDThh:mm:ss), or "
            "start_from=header to take the data file header's meas_date"
        )
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{table}: acq_time {value!r} of {data.name} is not ISO 8601 (YYYY-MM-DDThh:mm:ss)") from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=tz)).astimezone(dt.timezone.utc)


def _audio_file(data: Path, prefix: str, pattern: str, files: dict) -> Path:
    """The session's one file named ``<run entities>…`` that matches ``pattern``: next to the iEEG, or in a sibling
    folder of the session (``audio/``, ``beh/``). The session's folder is listed once (``files``), not once per run."""
    session = data.parent.parent
    if session not in files:
        files[session] = sorted(p for p in session.rglob("*") if p.is_file())
    found = [p for p in files[session] if fnmatch.fnmatch(p.name, pattern) and _same_run(p.name, prefix)]
    if len(found) != 1:
        what = "matches no file" if not found else f"matches {len(found)} files ({[p.name for p in found[:3]]})"
        raise InputError(
            f"audio.pattern={pattern!r} {what} of run {prefix} under {session}; expected one audio file per run "
            "(or audio.source=stimulus)"
        )
    return found[0]


def _same_run(name: str, prefix: str) -> bool:
    """``name`` carries every entity of ``prefix`` (the task may be left out: an ambient recorder's file has none)."""
    tokens = set(name.split(".")[0].split("_"))
    has_task = any(t.startswith("task-") for t in tokens)
    return all(e in tokens for e in prefix.split("_") if has_task or not e.startswith("task-"))


def _words_beside(wav: Path) -> Path | None:
    stem = wav.name.split(".")[0]
    stem = stem[: -len("_audio")] if stem.endswith("_audio") else stem
    p = wav.with_name(f"{stem}_words.tsv")
    return p.resolve() if p.is_file() else None


def _resolve(root: Path, rel: str, key: str) -> Path:
    p = root / rel
    if not p.is_file():
        raise InputError(f"{key}={rel}: {p} not found (paths are relative to bids_root)")
    return p.resolve()


def _stimulus(root: Path, data: Path, events: Path | None, audio: AudioSource) -> tuple[Path, float]:
    """The stimulus file and its onset (s after the recording start)."""
    if audio.stimulus:
        return _resolve(root, audio.stimulus, "audio.stimulus"), float(audio.onset or 0.0)
    if events is None:
        raise InputError(
            f"{data}: audio.source=stimulus without audio.stimulus, and the run has no events.tsv naming a stim_file"
        )
    rows = read_tsv(events, "events file", ("onset", "stim_file"), "a BIDS events.tsv with a stim_file column")
    named = [(r["stim_file"], r["onset"]) for _, r in rows if r["stim_file"] not in ("", "n/a")]
    files = sorted({f for f, _ in named})
    if len(files) != 1:
        raise InputError(
            f"{events}: stim_file names {len(files)} files ({files[:3]}); expected one continuous stimulus per run "
            "(or audio.stimulus=FILE with audio.onset=SECONDS)"
        )
    path = root / "stimuli" / files[0]
    if not path.is_file():
        raise InputError(f"{events}: stim_file {files[0]} not found as {path} (BIDS: relative to stimuli/)")
    if audio.onset is not None:
        return path.resolve(), float(audio.onset)
    try:
        onset = min(float(o) for f, o in named if f == files[0])
    except ValueError:
        raise InputError(f"{events}: an onset of stim_file {files[0]} is not a number (s)") from None
    return path.resolve(), onset


def _check_onset(data: Path, onset: float) -> None:
    """A stimulus onset outside the recording, as far as the sidecar's ``RecordingDuration`` tells (the pack
    checks the data file's own length too)."""
    sidecar = data.with_name(data.name.split(".")[0] + ".json")
    duration = None
    if sidecar.is_file():
        try:
            duration = json.loads(sidecar.read_text()).get("RecordingDuration")
        except (ValueError, OSError, AttributeError):
            duration = None
    if onset < 0 or (isinstance(duration, (int, float)) and onset >= duration):
        within = f" of {duration:g} s ({sidecar.name})" if isinstance(duration, (int, float)) else ""
        raise InputError(
            f"audio.onset={onset:g}: outside the recording {data.name}{within}; expected seconds after its start"
        )


def _electrodes(root: Path, bp, space: str | None) -> Path | None:
    """The subject's ``electrodes.tsv``: the session's first, then any of the subject's; of several spaces,
    ``space`` or a template ``MNI*`` one, else the first by name."""
    subject = root / f"sub-{bp.subject}"
    found = sorted(subject.rglob(f"sub-{bp.subject}*_electrodes.tsv"))
    if bp.session:
        in_session = [p for p in found if f"_ses-{bp.session}_" in p.name or f"ses-{bp.session}" in p.parts]
        found = in_session or found
    if not found:
        return None

    def space_of(p: Path) -> str:
        m = re.search(r"_space-([A-Za-z0-9]+)", p.name)
        return m.group(1) if m else ""

    if space is not None:
        chosen = [p for p in found if space_of(p) == space]
        if not chosen:
            raise InputError(
                f"space={space}: sub-{bp.subject} has electrodes in {sorted({space_of(p) for p in found})}; "
                "expected one of those"
            )
        return chosen[0].resolve()
    template = [p for p in found if space_of(p).startswith("MNI")]
    return (template or found)[0].resolve()
