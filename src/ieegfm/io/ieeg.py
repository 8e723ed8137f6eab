"""Reading clinical iEEG files lazily with MNE: channel types, neural picks, flat-channel probes, chunks."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from ieegfm.errors import InputError
from ieegfm.io.recordings import read_channels_tsv

logger = logging.getLogger(__name__)

#: BIDS ``channels.tsv`` types -> MNE channel types.
BIDS_TYPES = {
    "SEEG": "seeg",
    "ECOG": "ecog",
    "DBS": "dbs",
    "EEG": "eeg",
    "ECG": "ecg",
    "EKG": "ecg",
    "EMG": "emg",
    "EOG": "eog",
    "MISC": "misc",
    "TRIG": "stim",
    "DC": "misc",
    "RESP": "resp",
    "TEMP": "temperature",
    "AUDIO": "misc",
    "OTHER": "misc",
}
NEURAL_TYPES = ("seeg", "ecog", "dbs")
_NON_NEURAL_NAMES = [
    (re.compile(r"^(EKG|ECG)", re.I), "ecg"),
    (re.compile(r"^DC\s*\d*$", re.I), "misc"),
    (re.compile(r"^(EMG)", re.I), "emg"),
    (re.compile(r"^(EOG)", re.I), "eog"),
    (
        re.compile(r"^(TRIG|STI|STATUS|EVENT|MARK|PHOTIC|PULSE|SPO2|OSAT|PR$|RESP|TEMP|AUDIO|MIC|BURSTS|ANNOT)", re.I),
        "misc",
    ),
]
#: Sampling rates (Hz) a header may give: anything else is a damaged header (clinical iEEG: 128 Hz to ~32 kHz).
SFREQ_RANGE = (1.0, 1e6)
READERS = (".edf", ".bdf", ".fif", ".fif.gz", ".vhdr", ".set", ".gdf")


@dataclass
class IEEGHeader:
    """What a lazily opened iEEG file tells without reading its samples.

    Attributes
    ----------
    path : Path
    sfreq : float
        Sampling rate (Hz); may be non-integer (e.g. 999.41).
    n_times : int
        Samples per channel.
    meas_date : datetime.datetime | None
        Wall-clock start (UTC) from the file header.
    ch_names : list of str
        All channels in the file.
    ch_types : dict
        Channel name -> MNE type after channels.tsv / name rules.
    bads : dict
        Channel name -> reason, for channels marked bad in channels.tsv.
    declared_duration : float | None
        Seconds the header declares when the file holds another length (a truncated copy, a recorder that
        crashed, bytes appended); None when they agree or the format does not declare it. ``n_times`` is what
        the file holds (what MNE reads).
    """

    path: Path
    sfreq: float
    n_times: int
    meas_date: dt.datetime | None
    ch_names: list[str]
    ch_types: dict[str, str]
    bads: dict[str, str] = field(default_factory=dict)
    declared_duration: float | None = None  # what the header declares, when the file holds another length

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_times / self.sfreq

    @property
    def neural(self) -> list[str]:
        """Neural (sEEG/ECoG/DBS) channels that are not marked bad, in file order."""
        return [c for c in self.ch_names if self.ch_types[c] in NEURAL_TYPES and c not in self.bads]


def open_raw(path: str | Path) -> mne.io.BaseRaw:
    """Open an iEEG file with MNE without loading its samples.

    Parameters
    ----------
    path : str | Path
        EDF, BDF, FIF, BrainVision (``.vhdr``), EEGLAB or GDF file.

    Returns
    -------
    raw : mne.io.BaseRaw
        Not preloaded.

    Raises
    ------
    InputError
        The file is missing, of an unknown format, or cannot be parsed (corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: iEEG file not found")
    if not path.name.lower().endswith(READERS):
        raise InputError(f"{path}: unknown iEEG format; expected one of {list(READERS)}")
    stub = placeholder(path)
    if stub is not None:
        raise InputError(stub)
    try:
        return mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as err:  # MNE raises many types on corrupt headers
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"{path}: cannot read iEEG file ({msg}); expected a valid {path.suffix.upper().lstrip('.')} file"
        ) from None


#: First bytes of the files datasets ship instead of their data: bids-examples' stubs, git-annex pointers.
_STUB_PREFIXES = (b"This is an empty file", b"../.git/annex/", b"/annex/objects/", b".git/annex/objects/")


def placeholder(path: Path) -> str | None:
    """Why ``path`` (or, for BrainVision, its ``.eeg``) is a placeholder rather than data, or None.

    bids-examples replaces data by a short text; a git-annex or DataLad clone without ``get`` holds pointers (a
    link to a missing object, or a text file naming it).
    """
    files = [path]
    if path.suffix.lower() == ".vhdr":
        files.append(path.with_suffix(".eeg"))
    for f in files:
        if f.is_symlink() and not f.exists():
            return f"{f}: a git-annex link to data not fetched (datalad get / git annex get it); not an iEEG file"
        try:
            if f.stat().st_size > 4096:
                continue
            head = f.read_bytes()[:64]
        except OSError:
            continue
        if head.startswith(_STUB_PREFIXES) or b"/annex/objects/" in head:
            kind = "an empty placeholder" if head.startswith(b"This is an empty") else "a git-annex pointer"
            return f"{f}: {kind} ({len(f.read_bytes())} bytes of text), not iEEG data; fetch the real file"
    return None


def channel_types(ch_names: list[str], channels_tsv: Path | None) -> tuple[dict[str, str], dict[str, str]]:
    """Channel types and bad channels from a BIDS ``channels.tsv``, or from clinical names.

    Parameters
    ----------
    ch_names : list of str
        Channels in the file.
    channels_tsv : Path | None
        BIDS channels table; its ``type`` and ``status`` columns win over name rules.

    Returns
    -------
    types : dict
        Name -> MNE type (``seeg`` unless the name looks non-neural: EKG/ECG, DC, EMG, EOG, triggers...).
    bads : dict
        Name -> reason for channels with ``status == bad``.
    """
    table = read_channels_tsv(channels_tsv) if channels_tsv is not None else {}
    types: dict[str, str] = {}
    bads: dict[str, str] = {}
    for name in ch_names:
        row = table.get(name)
        if row is not None and row.get("type"):
            types[name] = BIDS_TYPES.get(row["type"].upper(), "misc")
        else:
            types[name] = next((t for rx, t in _NON_NEURAL_NAMES if rx.match(name.strip())), "seeg")
        if row is not None and row.get("status", "").lower() == "bad":
            bads[name] = row.get("status_description") or f"marked bad in {Path(channels_tsv).name}"
    return types, bads


def edf_declared_duration(path: str | Path) -> float | None:
    """Seconds an EDF/BDF header declares (data records x record duration) when the file holds another length.

    The header's record count and per-signal sample counts fix the file size; MNE, when they disagree, infers the
    records from the file size and only warns. Returns None when size and header agree, when the header leaves
    the count open (-1, a recording in progress) or cannot be parsed (MNE's reader reports that).
    """
    path = Path(path)
    width = 3 if path.suffix.lower() == ".bdf" else 2
    try:
        with open(path, "rb") as f:
            fixed = f.read(256)
            n_signals = int(fixed[252:256])
            n_records, record_s = int(fixed[236:244]), float(fixed[244:252])
            f.seek(256 + n_signals * 216)
            samples = [int(f.read(8)) for _ in range(n_signals)]
    except (ValueError, OSError):
        return None
    per_record = sum(samples) * width
    if n_records < 0 or per_record <= 0 or not (math.isfinite(record_s) and record_s > 0) or n_signals < 1:
        return None
    if path.stat().st_size == 256 * (n_signals + 1) + n_records * per_record:
        return None
    return n_records * record_s


def vhdr_declared_samples(path: str | Path) -> int | None:
    """Samples per channel a BrainVision header declares (``DataPoints=`` of ``[Common Infos]``, optional), or None
    when it declares none or cannot be read (MNE infers the length from the data file's size)."""
    try:
        text = Path(path).read_bytes().decode("latin-1")
    except OSError:
        return None
    m = re.search(r"^\s*DataPoints\s*=\s*(\d+)\s*$", text, flags=re.M)
    return int(m.group(1)) if m else None


def declared_duration(path: Path, n_times: int, sfreq: float) -> float | None:
    """Seconds the header of an EDF/BDF (data records) or BrainVision (``DataPoints``) file declares when the file
    holds another length than that, else None."""
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        return edf_declared_duration(path)
    if suffix == ".vhdr":
        n = vhdr_declared_samples(path)
        return n / sfreq if n is not None and n != n_times else None
    return None


def read_header(path: str | Path, channels_tsv: Path | None = None) -> IEEGHeader:
    """Open a file lazily and describe it (see :class:`IEEGHeader`).

    Raises
    ------
    InputError
        As :func:`open_raw`.
    """
    raw = open_raw(path)
    sfreq, n_times = float(raw.info["sfreq"]), int(raw.n_times)
    if not (SFREQ_RANGE[0] <= sfreq <= SFREQ_RANGE[1]) or n_times < 1 or not raw.ch_names:  # (False for NaN)
        raise InputError(
            f"{path}: header gives sfreq {sfreq:g} Hz, {n_times} samples, {len(raw.ch_names)} channels; expected a "
            f"sampling rate of {SFREQ_RANGE[0]:g} Hz to {SFREQ_RANGE[1]:g} Hz (record duration and samples per "
            "record) and data"
        )
    unreadable = [c for c in raw.ch_names if not c.isprintable()]
    if unreadable:  # NUL or control bytes: such a name cannot be picked again (numpy drops trailing NULs)
        raise InputError(
            f"{path}: channel label(s) {unreadable[:3]} hold control or NUL bytes; expected printable labels "
            "(a damaged header?)"
        )
    types, bads = channel_types(raw.ch_names, channels_tsv)
    md = raw.info["meas_date"]
    return IEEGHeader(
        path=Path(path),
        sfreq=sfreq,
        n_times=n_times,
        meas_date=md.astimezone(dt.timezone.utc) if md is not None else None,
        ch_names=list(raw.ch_names),
        ch_types=types,
        bads=bads,
        declared_duration=declared_duration(Path(path), n_times, sfreq),
    )


def probe_std(raw: mne.io.BaseRaw, picks: list[str], n_probes: int = 5, probe_s: float = 10.0) -> np.ndarray:
    """Per-channel standard deviation over a few short segments spread across the file.

    Cheap (reads ``n_probes * probe_s`` seconds), used to find flat channels before streaming.

    Returns
    -------
    std : ndarray, shape (n_picks,)
        Minimum over probes of the per-probe std (V), so a channel flat in any probed segment shows as flat.
    """
    n = max(int(round(probe_s * raw.info["sfreq"])), 1)
    starts = np.linspace(0, max(raw.n_times - n, 0), n_probes).astype(int)
    stds = [np.nanstd(raw.get_data(picks=picks, start=s, stop=min(s + n, raw.n_times)), axis=1) for s in starts]
    return np.min(stds, axis=0)


def iter_chunks(raw: mne.io.BaseRaw, picks: list[str], chunk_s: float, start: int = 0, stop: int | None = None):
    """Yield consecutive chunks ``(n_picks, n)`` of float64 samples in volts, ``n = chunk_s * sfreq``.

    Memory is bounded by one chunk whatever the recording length.
    """
    stop = raw.n_times if stop is None else stop
    step = max(int(round(chunk_s * raw.info["sfreq"])), 1)
    for s in range(start, stop, step):
        yield raw.get_data(picks=picks, start=s, stop=min(s + step, stop))
