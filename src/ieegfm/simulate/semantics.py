"""The semantic component of the simulated task session: meaning, not sound, drives some contacts.

The acoustic responses (:mod:`ieegfm.simulate.brain`) say nothing about what a sentence means, so a text head could
only learn what the acoustics give away. This component gives the language heads a known answer.

Generative model
----------------
Let ``e_s`` be the sentence-transformers embedding (all-MiniLM-L6-v2 by default, unit norm, 384-d) of the sentence
being heard and ``e_w`` that of the word being heard (the word alone, lower case, punctuation stripped), each
centred by the mean over the sentence pool (resp. its words), so that the drive carries meaning and not the mere
presence of speech. A set of ``semantic_fraction`` of the contacts (the flat and noisy ones excluded) is driven by

``u_c(t) = s_c * (h * (P_c . e_s(t) + word_weight * Q_c . e_w(t)))``

with ``P``, ``Q`` fixed Gaussian projections (entries N(0, 1/dim)), ``e_s(t) = 0`` between sentences and
``e_w(t) = 0`` between words, and ``h`` a gamma bump peaking at 0.35 s (unit sum, 1.2 s long): a sustained,
lagged response. ``s_c`` makes the std of ``u_c`` over the first task block ``semantic_snr`` times the contact's
background std (all frequencies). The drive is added to the contact's signal before the day's gain drift.
Everything the component used is in ``truth.json`` under ``task.semantic`` (contacts, SNR, model, projection seed),
except the projections themselves, which are regenerated from the seed.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.signal import lfilter

__all__ = ["SemanticModel", "word_key"]

_PEAK_S = 0.35
_LENGTH_S = 1.2


def word_key(word: str) -> str:
    """The spelling a word is embedded under: lower case, surrounding punctuation stripped."""
    return re.sub(r"^[^\w']+|[^\w']+$", "", str(word).lower())


class SemanticModel:
    """Static parameters of the semantic component and the drive of one block.

    Parameters
    ----------
    contacts : ndarray of int
        Indices (in the layout's contacts) of the driven contacts.
    background_std : ndarray, shape (n_contacts,)
        Background std of every contact (V), the SNR reference.
    sentence_embeddings, word_embeddings : dict of str -> ndarray (dim,)
        Embeddings of every sentence of the pool and of every word key (:func:`word_key`).
    snr : float
        ``semantic_snr``: drive std / background std.
    word_weight : float
        Weight of the word-level term relative to the sentence-level one.
    frame_rate : float
        Rate the drive is computed at (Hz).
    rng : numpy.random.Generator
        Draws the projections.
    """

    def __init__(
        self,
        contacts: np.ndarray,
        background_std: np.ndarray,
        sentence_embeddings: dict[str, np.ndarray],
        word_embeddings: dict[str, np.ndarray],
        snr: float,
        word_weight: float,
        frame_rate: float,
        rng: np.random.Generator,
    ) -> None:
        self.contacts = np.asarray(contacts, int)
        self.snr, self.word_weight, self.frame_rate = float(snr), float(word_weight), float(frame_rate)
        s_mean = np.mean(list(sentence_embeddings.values()), axis=0)
        w_mean = np.mean(list(word_embeddings.values()), axis=0)
        self.sentences = {k: v - s_mean for k, v in sentence_embeddings.items()}
        self.words = {k: v - w_mean for k, v in word_embeddings.items()}
        dim = s_mean.size
        self.dim = dim
        self.P = rng.standard_normal((self.contacts.size, dim)) / np.sqrt(dim)
        self.Q = rng.standard_normal((self.contacts.size, dim)) / np.sqrt(dim)
        tau = np.arange(int(_LENGTH_S * frame_rate)) / frame_rate
        shape = 4.0
        theta = _PEAK_S / (shape - 1.0)
        h = np.where(
            tau > 0, (np.clip(tau, 1e-12, None) / _PEAK_S) ** (shape - 1) * np.exp(-(tau - _PEAK_S) / theta), 0
        )
        self.kernel = h / h.sum()
        self.background_std = np.asarray(background_std, float)[self.contacts]
        self.scale: np.ndarray | None = None  # set by the first block (calibrate)

    def _raw(self, events: list[tuple[float, float, str]], words: list[tuple[float, float, str]], n_frames: int):
        x = np.zeros((self.contacts.size, n_frames))
        fr = self.frame_rate
        for onset, duration, text in events:
            lo, hi = int(round(onset * fr)), min(n_frames, int(round((onset + duration) * fr)))
            e = self.sentences.get(" ".join(text.split()))
            if e is not None and hi > lo:
                x[:, lo:hi] += (self.P @ e)[:, None]
        for onset, duration, word in words:
            lo, hi = int(round(onset * fr)), min(n_frames, int(round((onset + duration) * fr)))
            e = self.words.get(word_key(word))
            if e is not None and hi > lo:
                x[:, lo:hi] += self.word_weight * (self.Q @ e)[:, None]
        return lfilter(self.kernel, [1.0], x, axis=1)

    def drive(
        self, events: list[tuple[float, float, str]], words: list[tuple[float, float, str]], n_frames: int
    ) -> np.ndarray:
        """The semantic drive of one block (V), shape ``(n_driven, n_frames)`` at ``frame_rate``.

        The first call fixes the per-contact scale (std over that block = ``snr`` x background std).
        """
        raw = self._raw(events, words, n_frames)
        if self.scale is None:
            self.scale = self.snr * self.background_std / (raw.std(axis=1) + 1e-12)
        return raw * self.scale[:, None]

    def truth(self, ch_names: list[str]) -> dict:
        """JSON-able description (contacts by name, SNR, kernel, scales)."""
        return {
            "contacts": [ch_names[c] for c in self.contacts],
            "snr": self.snr,
            "snr_definition": "std of the drive over the first task block / background std of the contact",
            "word_weight": self.word_weight,
            "embedding_dim": self.dim,
            "kernel": f"gamma bump (shape 4) peaking at {_PEAK_S} s, {_LENGTH_S} s long, unit sum",
            "scale": None
            if self.scale is None
            else dict(zip([ch_names[c] for c in self.contacts], self.scale.tolist())),
        }
