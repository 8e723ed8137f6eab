"""Reading the Neuro2Semantic data format (Shams et al., Interspeech 2025; github.com/SiavashShams/neuro2semantic).

Their pickle is a dict::

    trials            list of dict, one per recording (a story or a passage), each with
        delta, theta, alpha, beta, gamma, highgamma
                      float arrays (n_times, n_electrodes): band envelopes of every electrode, same n_times
        subj          list of str (n_electrodes,): the subject each electrode column belongs to
        script        str: the text heard
        wrd_labels    array (n_times,): the word label heard at each sample (0: none), keys of info.wrd_dict
        sentence_labels  list of {sentence: str, indices: int array}: the samples of each sentence
    info              dict with wrd_dict (word -> label)
    significan_elecs  bool array (n_electrodes,): their electrode selection (sic: the key is spelled so)

The file stores no sampling rate: ``sfreq`` is required. It is loaded with :func:`ieegfm.io.safe_pickle.safe_load`
(numpy arrays and builtin containers only; nothing in it is executed). Electrodes of several subjects sit side by
side in one array (the same stimulus heard by each); here they become the channels of one pooled recording,
named ``<subject>-e<column>-<band>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ieegfm.errors import InputError
from ieegfm.io.safe_pickle import safe_load

__all__ = ["BANDS", "N2STrial", "N2SRecording", "read_n2s"]

#: The band arrays a Neuro2Semantic trial may hold, low to high.
BANDS = ("delta", "theta", "alpha", "beta", "gamma", "highgamma")


@dataclass
class N2STrial:
    """One trial, ready to pack.

    Attributes
    ----------
    data : ndarray, shape (n_chans, n_times), float32
        The selected bands of the selected electrodes (channel order of :attr:`N2SRecording.ch_names`).
    sentences : list of (float, float, str)
        Onset (s from the trial start), duration (s) and text of each sentence.
    words : list of (float, float, str)
        Onset, duration (s) and word of each run of samples with one word label.
    """

    data: np.ndarray
    sentences: list[tuple[float, float, str]]
    words: list[tuple[float, float, str]]


@dataclass
class N2SRecording:
    """The trials of a Neuro2Semantic pickle at ``sfreq`` with their channel names."""

    sfreq: float
    ch_names: list[str]
    trials: list[N2STrial]
    bands: list[str]
    n_electrodes: int


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, label) of each run of equal nonzero labels."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.size == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [labels.size]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, stops) if labels[a] != 0]


def read_n2s(
    path: str | Path,
    sfreq: float,
    bands: list[str] | None = None,
    subjects: list[str] | None = None,
    significant_only: bool = True,
) -> N2SRecording:
    """Read and check a Neuro2Semantic pickle.

    Parameters
    ----------
    path : str | Path
    sfreq : float
        Sampling rate of the band arrays (Hz); the file does not store it.
    bands : list of str, optional
        Bands kept (default: every band of :data:`BANDS` the trials hold).
    subjects : list of str, optional
        Electrode subjects kept (their ``subj`` labels; default: all).
    significant_only : bool
        Keep only the electrodes ``significan_elecs`` marks (their selection).

    Returns
    -------
    N2SRecording

    Raises
    ------
    InputError
        Not a readable or safe pickle; a missing key or a value of the wrong shape, naming ``trials[i].<key>``;
        ``sfreq`` not positive; no electrode or band left after the selection.
    """
    where = f"file={path}"
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise InputError(f"sfreq={sfreq}: expected the sampling rate of the band arrays in Hz (> 0)")
    d = safe_load(path, "file")
    if not isinstance(d, dict) or not isinstance(d.get("trials"), list) or not d["trials"]:
        raise InputError(f"{where}: expected a Neuro2Semantic dict with a non-empty 'trials' list")
    info = d.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("wrd_dict"), dict):
        raise InputError(f"{where}: 'info.wrd_dict' (word -> label) missing")
    words_of = {int(v): str(k) for k, v in info["wrd_dict"].items()}
    first = d["trials"][0]
    present = [b for b in BANDS if isinstance(first, dict) and b in first]
    bands = list(bands) if bands else present
    unknown = [b for b in bands if b not in BANDS]
    if unknown or not bands:
        raise InputError(f"bands={bands}: expected some of {list(BANDS)} (the file holds {present})")
    subj = first.get("subj") if isinstance(first, dict) else None
    if not isinstance(subj, (list, tuple, np.ndarray)) or not len(subj):
        raise InputError(f"{where}: trials[0].subj (the subject of each electrode column) missing")
    subj = [str(s) for s in subj]
    n_elec = len(subj)
    keep = np.ones(n_elec, bool)
    if significant_only:
        sig = np.asarray(d.get("significan_elecs", np.ones(n_elec, bool)))
        if sig.shape != (n_elec,):
            raise InputError(
                f"{where}: significan_elecs has shape {sig.shape}, expected ({n_elec},) (one per electrode)"
            )
        keep &= sig.astype(bool)
    if subjects:
        keep &= np.isin(subj, [str(s) for s in subjects])
    cols = np.flatnonzero(keep)
    if cols.size == 0:
        raise InputError(f"{where}: no electrode left (subjects={subjects}, significant_only={significant_only})")
    ch_names = [f"{subj[c]}-e{c:03d}-{b}" for b in bands for c in cols]
    trials = []
    for i, t in enumerate(d["trials"]):
        at = f"{where}: trials[{i}]"
        if not isinstance(t, dict):
            raise InputError(f"{at}: expected a dict")
        if [str(s) for s in t.get("subj", [])] != subj:
            raise InputError(f"{at}.subj differs from trials[0].subj (the electrode columns must be the same)")
        arrays = []
        for b in bands:
            x = t.get(b)
            if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_elec:
                shape = getattr(x, "shape", None)
                raise InputError(f"{at}.{b}: expected an array (n_times, {n_elec}), got {shape}")
            if arrays and x.shape[0] != arrays[0].shape[1]:
                raise InputError(f"{at}.{b}: {x.shape[0]} samples, {bands[0]} has {arrays[0].shape[1]}")
            arrays.append(np.asarray(x[:, cols], np.float32).T)
        data = np.concatenate(arrays, axis=0)
        n = data.shape[1]
        if not np.isfinite(data).all():
            raise InputError(f"{at}: band arrays hold NaN or inf")
        sentences = []
        for j, s in enumerate(t.get("sentence_labels") or []):
            idx = np.asarray(s.get("indices", []) if isinstance(s, dict) else [], np.int64)
            text = str(s.get("sentence", "")).strip() if isinstance(s, dict) else ""
            if idx.size == 0 or not text:
                raise InputError(f"{at}.sentence_labels[{j}]: expected {{'sentence': text, 'indices': samples}}")
            if idx.min() < 0 or idx.max() >= n:
                raise InputError(f"{at}.sentence_labels[{j}].indices: outside the trial's {n} samples")
            sentences.append((idx.min() / sfreq, (idx.max() + 1 - idx.min()) / sfreq, text))
        labels = t.get("wrd_labels")
        words = []
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise InputError(f"{at}.wrd_labels: shape {labels.shape}, expected ({n},) (one label per sample)")
            for a, b, lab in _runs(labels):
                if lab not in words_of:
                    raise InputError(f"{at}.wrd_labels: label {lab} not in info.wrd_dict")
                words.append((a / sfreq, (b - a) / sfreq, words_of[lab]))
        trials.append(N2STrial(data=data, sentences=sentences, words=words))
    return N2SRecording(sfreq=float(sfreq), ch_names=ch_names, trials=trials, bands=bands, n_electrodes=int(cols.size))
