"""Files of the simulated dataset: EDF, BIDS ``channels.tsv``, WAV, word transcript, recordings table."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import mne
import numpy as np
from scipy.io import wavfile

__all__ = [
    "write_edf",
    "write_channels_tsv",
    "write_wav",
    "write_words_tsv",
    "write_recordings_tsv",
    "write_electrodes_tsv",
    "write_bids_sidecars",
]

_BIDS_TYPES = {"seeg": "SEEG", "ecg": "ECG", "misc": "MISC"}


def write_edf(
    fname: Path, data: np.ndarray, ch_names: list[str], ch_types: list[str], sfreq: float, meas_date: dt.datetime
) -> None:
    """Write one block as EDF+ with :func:`mne.export.export_raw` (edfio backend).

    Parameters
    ----------
    fname : Path
        Output ``.edf`` file.
    data : ndarray, shape (n_chans, n_times)
        Signals in volts.
    ch_names, ch_types : list of str
        Channel names and MNE types.
    sfreq : float
        Sampling rate (Hz).
    meas_date : datetime
        Wall-clock start (timezone-aware, UTC); EDF keeps whole seconds.

    Notes
    -----
    Physical ranges are set per channel (``physical_range="channelwise"``), so the 16-bit resolution of the
    microvolt sEEG channels is not spent on the millivolt ECG or DC channels.
    """
    info = mne.create_info(ch_names, sfreq, ch_types)
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_meas_date(meas_date)
    mne.export.export_raw(fname, raw, fmt="edf", physical_range="channelwise", overwrite=True, verbose=False)


def write_channels_tsv(
    fname: Path, ch_names: list[str], ch_types: list[str], sfreq: float, bad: dict[str, str]
) -> None:
    """BIDS ``channels.tsv`` (name, type, units, low_cutoff, high_cutoff, status, status_description).

    Parameters
    ----------
    fname : Path
        Output file.
    ch_names, ch_types : list of str
        Channel names and MNE types (``seeg``, ``ecg``, ``misc``).
    sfreq : float
        Sampling rate (Hz); ``high_cutoff`` is the Nyquist frequency (no hardware low-pass is simulated).
    bad : dict of str to str
        Channels marked ``bad``, with their description.
    """
    with open(fname, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["name", "type", "units", "low_cutoff", "high_cutoff", "status", "status_description"])
        for name, kind in zip(ch_names, ch_types):
            status = "bad" if name in bad else "good"
            w.writerow([name, _BIDS_TYPES[kind], "V", "0.0", f"{sfreq / 2:g}", status, bad.get(name, "n/a")])


def write_wav(fname: Path, audio: np.ndarray, sfreq: int) -> None:
    """16-bit PCM mono WAV of ``audio`` (shape ``(n_samples,)``, full scale 1)."""
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    wavfile.write(fname, int(sfreq), pcm)


def write_words_tsv(fname: Path, words: list[tuple[float, float, str]]) -> None:
    """Word transcript: ``onset``, ``duration`` (s from the block start), ``word``."""
    with open(fname, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["onset", "duration", "word"])
        for onset, duration, word in words:
            w.writerow([f"{onset:.4f}", f"{duration:.4f}", word])


def write_events_tsv(fname: Path, events: list[tuple[float, float, str]], trial_type: str = "sentence") -> None:
    """BIDS ``events.tsv``: ``onset``, ``duration`` (s from the recording start), ``trial_type``, ``value``."""
    with open(fname, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["onset", "duration", "trial_type", "value"])
        for onset, duration, text in events:
            w.writerow([f"{onset:.4f}", f"{duration:.4f}", trial_type, text])


def write_electrodes_tsv(fname: Path, names: list[str], positions: np.ndarray) -> None:
    """A BIDS ``electrodes.tsv`` (name, x, y, z in mm, size in mm^2) and its sibling ``coordsystem.json``
    (``Other`` space: simulated, not a template)."""
    with open(fname, "w", newline="") as f:
        f.write("name\tx\ty\tz\tsize\n")
        for n, (x, y, z) in zip(names, positions):
            f.write(f"{n}\t{x:.3f}\t{y:.3f}\t{z:.3f}\t5\n")
    coords = {
        "iEEGCoordinateSystem": "Other",
        "iEEGCoordinateUnits": "mm",
        "iEEGCoordinateSystemDescription": "simulated: a brain-sized box centred on 0, x to the right (ieegfm.simulate)",
    }
    fname.with_name(fname.name.replace("_electrodes.tsv", "_coordsystem.json")).write_text(json.dumps(coords, indent=1))


def write_recordings_tsv(fname: Path, rows: list[dict[str, str]]) -> None:
    """The recordings table: ``subject session ieeg audio start_time words`` (paths relative to its folder), and
    ``events`` and ``electrodes`` when the rows have them."""
    cols = ["subject", "session", "ieeg", "audio", "start_time", "words"]
    cols += [c for c in ("events", "electrodes") if rows and c in rows[0]]
    with open(fname, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({c: row[c] for c in cols})


def write_bids_sidecars(out: Path, rows: list[dict[str, str]]) -> None:
    """What makes the simulated folder a BIDS root as well as a recordings table: ``dataset_description.json`` and
    each session's ``scans.tsv`` (``filename``, ``acq_time`` in UTC, ``Z``), so ``ieegfm pack bids_root=`` reads it
    (the audio is found by ``audio.pattern``, the words beside it)."""
    description = {"Name": "ieegfm simulated iEEG + ambient audio", "BIDSVersion": "1.10.0", "DatasetType": "raw",
                   "GeneratedBy": [{"Name": "ieegfm.simulate"}]}  # fmt: skip
    (out / "dataset_description.json").write_text(json.dumps(description, indent=1) + "\n")
    sessions: dict[Path, list[tuple[str, str]]] = {}
    for r in rows:
        ieeg = Path(r["ieeg"])  # sub-X/ses-Y/ieeg/<name>
        when = dt.datetime.fromisoformat(r["start_time"]).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        sessions.setdefault(ieeg.parent.parent, []).append((f"ieeg/{ieeg.name}", when))
    for folder, entries in sessions.items():
        name = "_".join(folder.parts[-2:]) + "_scans.tsv"
        with open(out / folder / name, "w", newline="") as f:
            f.write("filename\tacq_time\n")
            for fname, when in sorted(entries):
                f.write(f"{fname}\t{when}\n")
