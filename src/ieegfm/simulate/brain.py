"""The simulated sEEG: background, artefacts, non-neural channels and audio-driven responses.

Generative model (all units volts, times seconds)
-------------------------------------------------
Layout
    ``n_shafts`` depth electrodes with ``contacts_per_shaft`` contacts each, named like clinical sEEG
    (``LA1..LA8``, ``LH1..``, ``RA1..``, ``RH1..``; with ``prime_names`` the right side is written ``A'1``), then
    the non-neural channels ``EKG1``, ``EKG2`` (ECG) and ``DC01``, ``DC02`` (MISC).
Background
    Per contact ``z_j``: Gaussian noise with power spectrum ``1 / (f^2 + f_knee^2)^(beta_j / 2)``
    (``beta_j ~ U(1.5, 2)``, ``f_knee = 0.5`` Hz), unit variance; mixed along the shaft with the Cholesky factor of
    ``rho^|i - j|`` (``rho ~ U(0.6, 0.85)`` per shaft), scaled to ``amp_i ~ 50 uV * U(0.7, 1.4)``; plus a white
    amplifier floor of 0.5 uV. Blocks are generated independently (the background restarts at block boundaries).
Responses
    A fraction of the contacts (contiguous runs along the shafts) respond to the audio. The stimulus is
    ``Z = (F - mu) / sd``: log-mel band energies and log envelope (:func:`~ieegfm.simulate.stimulus.stimulus_features`)
    at 100 Hz, z-scored with fixed statistics of a calibration scene. Contact ``c`` has unit-norm weights ``w_c``
    over the features and a kernel ``h_c(tau) = g(tau; k, lag) - a g(tau; k, 2 lag)`` on ``0 <= tau < 0.6 s``,
    with ``g`` a gamma bump peaking at ``lag`` (``lag`` in 80-250 ms). The low-frequency response
    ``s_c * lowpass_15Hz(h_c * (w_c . Z))`` (linearly interpolated to ``sfreq``) has ``s_c`` chosen so that its
    std in 0.5-20 Hz on the calibration scene is ``snr`` times the background std in 0.5-20 Hz. Weights, lags and shapes are
    smooth along a shaft (neighbours respond alike but not identically), so the bipolar montage still sees them.
    The high-gamma component is Gaussian noise band-limited to 70-170 Hz times ``softplus(e_c(t))``, with ``e_c``
    the envelope row of ``Z`` convolved with the positive lobe of ``h_c``; its amplitude makes its std at
    ``e_c = 1`` ``hg_snr`` times the background std in 70-170 Hz.
Gain drift
    Background and response of contact ``i`` on day ``d`` are multiplied by ``exp(r_id)``, ``r_i`` a Gaussian
    random walk over days (step sd 0.1, ``r_i0 = 0``).
Line noise
    ``sum_h A_ih cos(2 pi h f_line t + phi_ih)`` for ``h = 1, 2, 3`` (below Nyquist), ``t`` on the wall clock since
    the first block, so the phase is continuous across blocks. ``A_i1 ~ U(10, 40) uV``, ``A_i2 / A_i1 ~ U(0.2, 0.5)``,
    ``A_i3 / A_i1 ~ U(0.1, 0.3)``.
Artefacts
    One flat contact (a constant, status "good": packing must find it) and one noisy contact (extra white noise of
    500 uV rms, status "bad"), both chosen among non-responsive contacts.
Non-neural
    ``EKG1``/``EKG2``: P-QRS-T complexes at 60-80 beats/min (R peak ~1 mV) with heart-rate variability, baseline
    wander and line noise; ``DC01``: steps between random levels (+-50 mV); ``DC02``: slow random-walk drift.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfiltfilt

__all__ = ["Layout", "make_layout", "BrainModel"]

_LEFT = ["A", "H", "T", "I", "O", "C", "P", "F"]  # amygdala, hippocampus, temporal, insula, orbitofrontal, ...
_EKG = ["EKG1", "EKG2"]
_DC = ["DC01", "DC02"]
_F_KNEE = 0.5
_FLOOR = 0.5e-6


@dataclass
class Layout:
    """Channel layout.

    Attributes
    ----------
    ch_names : list of str
        All channels: contacts (shaft by shaft, deepest first), then ``EKG1``, ``EKG2``, ``DC01``, ``DC02``.
    ch_types : list of str
        MNE channel types (``seeg``, ``ecg``, ``misc``).
    shaft : ndarray of int, shape (n_contacts,)
        Shaft index of each contact.
    position : ndarray of int, shape (n_contacts,)
        Contact index along its shaft (0 = deepest).
    shaft_names : list of str
        Name prefix of each shaft.
    """

    ch_names: list[str]
    ch_types: list[str]
    shaft: np.ndarray
    position: np.ndarray
    shaft_names: list[str]

    @property
    def n_contacts(self) -> int:
        """Number of sEEG contacts."""
        return int(self.shaft.size)


#: Seed of the anatomical map of :func:`shared_map`: the same for every patient and every run.
SHARED_MAP_SEED = 20261207


def shared_map(positions: np.ndarray, n_features: int, n_waves: int = 12, scale_mm: float = 60.0):
    """Feature weights and lags as smooth functions of a contact's position, the same for every patient.

    Each is a sum of ``n_waves`` plane waves with random directions and wavelengths around ``scale_mm`` (drawn from
    :data:`SHARED_MAP_SEED`): contacts a few mm apart respond alike, in any patient.

    Returns
    -------
    weights : ndarray, shape (n, n_features)
        Unit-norm rows.
    lags : ndarray, shape (n,)
        Seconds, in 0.08-0.25.
    """
    rng = np.random.default_rng(SHARED_MAP_SEED)
    k = rng.normal(0, 1.0 / scale_mm, (n_waves, 3))
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    amp = rng.standard_normal((n_waves, n_features))
    lag_amp = rng.standard_normal(n_waves)
    waves = np.cos(2 * np.pi * positions @ k.T + phase)  # (n, n_waves)
    weights = waves @ amp
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    z = waves @ lag_amp / np.sqrt(n_waves / 2)
    lags = 0.08 + 0.17 / (1 + np.exp(-z))
    return weights, lags


def contact_positions(
    layout: Layout, seed: int, spacing_mm: float = 3.5, target_jitter_mm: float | None = None
) -> np.ndarray:
    """Simulated contact positions (mm, a brain-sized box centred on 0, x to the right): each shaft a straight
    line entering from the lateral surface of its hemisphere (``L``/unprimed left, ``R``/primed right), contacts
    ``spacing_mm`` apart, contact 1 the deepest. Drawn from their own generator (``seed``), so the recordings do
    not change with them (unless ``simulate shared_responses=true`` makes the responses a function of them).

    Parameters
    ----------
    layout : Layout
    seed : int
        The patient's seed.
    spacing_mm : float
        Distance between neighbouring contacts (mm).
    target_jitter_mm : float, optional
        Named targets: a shaft's planned entry point and direction depend on its name only (``LA`` aims at the
        left amygdala in every patient), and each patient's shaft is placed with a scatter of this sd (mm) at the
        entry (and the same displacement spread over the shaft's length for its direction), as clinical plans
        aimed at the same structures land a few mm apart. Default: every entry drawn anywhere on its side.

    Returns
    -------
    positions : ndarray, shape (n_contacts, 3)
    """
    rng = np.random.default_rng([seed, 4242])
    n = layout.n_contacts
    cps = n // len(layout.shaft_names)
    out = np.zeros((n, 3))
    for k, name in enumerate(layout.shaft_names):
        right = name.startswith("R") or name.endswith("'")
        side = 1.0 if right else -1.0
        draw = rng
        if target_jitter_mm is not None:  # the plan: a generator of the target's name (side + region) alone
            region = name.rstrip("'") if name.endswith("'") else name[1:] if name[:1] in "LR" else name
            draw = np.random.default_rng([zlib.crc32(f"{'R' if right else 'L'}{region}".encode()), 4243])
        entry = np.array([side * 65.0, draw.uniform(-40, 30), draw.uniform(-25, 25)])
        direction = np.array([-side, draw.normal(0, 0.15), draw.normal(0, 0.15)])
        if target_jitter_mm is not None:  # this patient's placement of the planned shaft
            entry[1:] += rng.normal(0, target_jitter_mm, 2)
            direction[1:] += rng.normal(0, target_jitter_mm, 2) / (spacing_mm * max(cps - 1, 1))
        direction /= np.linalg.norm(direction)
        deepest = entry + direction * spacing_mm * (cps - 1)
        idx = np.flatnonzero(layout.shaft == k)
        out[idx] = deepest - np.outer(layout.position[idx], direction) * spacing_mm
    return out


def make_layout(n_shafts: int, contacts_per_shaft: int, prime_names: bool = False) -> Layout:
    """Clinical channel names for ``n_shafts`` shafts: ``LA``, ``LH``, ``RA``, ``RH``, ``LT``, ``LI``, ``RT``, ...

    Parameters
    ----------
    n_shafts : int
        Number of depth electrodes (>= 1).
    contacts_per_shaft : int
        Contacts per electrode (>= 2).
    prime_names : bool
        Write right-hemisphere shafts as ``A'`` instead of ``RA`` and left ones without ``L``.

    Returns
    -------
    layout : Layout
    """
    if n_shafts < 1:
        raise ValueError(f"n_shafts={n_shafts}: expected at least 1")
    if contacts_per_shaft < 2:
        raise ValueError(f"contacts_per_shaft={contacts_per_shaft}: expected at least 2")
    names: list[str] = []
    for k in range(n_shafts):
        group, j = divmod(k, 4)  # shafts come in fours: left r0, left r1, right r0, right r1
        idx = 2 * group + j % 2
        region = _LEFT[idx] if idx < len(_LEFT) else f"S{idx}"
        right = j >= 2
        names.append((region + "'" if right else region) if prime_names else ("R" if right else "L") + region)
    ch_names = [f"{s}{i + 1}" for s in names for i in range(contacts_per_shaft)]
    if len(set(ch_names)) != len(ch_names):
        raise ValueError(f"n_shafts={n_shafts}: too many shafts to name uniquely")
    shaft = np.repeat(np.arange(n_shafts), contacts_per_shaft)
    position = np.tile(np.arange(contacts_per_shaft), n_shafts)
    return Layout(
        ch_names=ch_names + _EKG + _DC,
        ch_types=["seeg"] * len(ch_names) + ["ecg"] * 2 + ["misc"] * 2,
        shaft=shaft,
        position=position,
        shaft_names=names,
    )


def _gamma_bump(t: np.ndarray, shape: float, peak: float) -> np.ndarray:
    theta = peak / (shape - 1.0)
    g = np.where(t > 0, (np.clip(t, 1e-12, None) / peak) ** (shape - 1) * np.exp(-(t - peak) / theta), 0.0)
    return g


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _colored_unit_noise(rng: np.random.Generator, betas: np.ndarray, n_times: int, sfreq: float) -> np.ndarray:
    """Unit-variance Gaussian noise with spectrum ``1/(f^2 + f_knee^2)^(beta/2)``, shape ``(len(betas), n_times)``."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    out = np.empty((betas.size, n_times))
    for i, beta in enumerate(betas):
        spec = 1.0 / (freqs**2 + _F_KNEE**2) ** (beta / 2.0)
        spec[0] = 0.0
        scale = 0.5 * n_times * np.sqrt(spec / spec.sum())  # Parseval: unit variance
        coef = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * scale
        out[i] = np.fft.irfft(coef, n_times)
    return out


def _band_fraction(beta: float, band: tuple[float, float], sfreq: float) -> float:
    """Fraction of the variance of the unit background that lies in ``band`` (on a 0.01 Hz grid)."""
    freqs = np.arange(0.01, sfreq / 2, 0.01)
    spec = 1.0 / (freqs**2 + _F_KNEE**2) ** (beta / 2.0)
    mask = (freqs >= band[0]) & (freqs <= band[1])
    return float(spec[mask].sum() / spec.sum())


def _band_noise(
    rng: np.random.Generator, n_signals: int, n_times: int, sfreq: float, band: tuple[float, float]
) -> np.ndarray:
    """Unit-variance Gaussian noise with a flat spectrum in ``band``, shape ``(n_signals, n_times)``."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    mask = (freqs >= band[0]) & (freqs <= min(band[1], 0.49 * sfreq))
    out = np.zeros((n_signals, n_times))
    if not mask.any():
        return out
    scale = 0.5 * n_times / np.sqrt(mask.sum())  # Parseval: unit variance
    for i in range(n_signals):
        coef = np.zeros(freqs.size, complex)
        coef[mask] = (rng.standard_normal(mask.sum()) + 1j * rng.standard_normal(mask.sum())) * scale
        out[i] = np.fft.irfft(coef, n_times)
    return out


class BrainModel:
    """Static parameters of the simulated patient and the rendering of one block of sEEG.

    Parameters
    ----------
    layout : Layout
        Channel layout.
    sfreq : float
        iEEG sampling rate (Hz).
    n_features : int
        Rows of the stimulus features (mel bands + envelope; the last row is the envelope).
    frame_rate : float
        Rate of the stimulus features (Hz).
    n_days : int
        Number of recording days (for the gain drift).
    responsive_fraction : float
        Fraction of contacts that respond to the audio.
    snr : float
        Response std / background std in 0.5-20 Hz (on the calibration scene).
    hg_snr : float
        High-gamma std at +1 sd of the lagged envelope / background std in 70-170 Hz.
    line_freq : float
        Power-line frequency (Hz); 0 disables line noise.
    rng : numpy.random.Generator
        Draws the static parameters.
    positions : ndarray, shape (n_contacts, 3), optional
        Contact positions (mm, :func:`contact_positions`): the responsive contacts' feature weights and lags then
        come from :func:`shared_map`, the same function of the position for every patient, instead of being drawn
        per patient (``simulate shared_responses=true``; the other draws are unchanged).
    """

    def __init__(
        self,
        layout: Layout,
        sfreq: float,
        n_features: int,
        frame_rate: float,
        n_days: int,
        responsive_fraction: float,
        snr: float,
        hg_snr: float,
        line_freq: float,
        rng: np.random.Generator,
        positions: np.ndarray | None = None,
    ) -> None:
        if not 0.0 <= responsive_fraction <= 1.0:
            raise ValueError(f"responsive_fraction={responsive_fraction}: expected a value in [0, 1]")
        self.layout, self.sfreq, self.frame_rate = layout, float(sfreq), float(frame_rate)
        self.n_features, self.snr, self.hg_snr, self.line_freq = n_features, float(snr), float(hg_snr), line_freq
        n_c = layout.n_contacts
        n_shafts = len(layout.shaft_names)
        cps = n_c // n_shafts
        # background
        self.beta = rng.uniform(1.5, 2.0, n_c)
        self.amp = 50e-6 * rng.uniform(0.7, 1.4, n_c)
        self.rho = rng.uniform(0.6, 0.85, n_shafts)
        self.mix = []
        for s in range(n_shafts):
            idx = np.arange(cps)
            self.mix.append(np.linalg.cholesky(self.rho[s] ** np.abs(idx[:, None] - idx[None, :])))
        mix_sq = np.concatenate([m**2 for m in self.mix], axis=0)  # (n_c, cps) rows of shaft mixing
        lf_frac = np.array([_band_fraction(b, (0.5, 20.0), sfreq) for b in self.beta])
        hg_frac = np.array([_band_fraction(b, (70.0, 170.0), sfreq) for b in self.beta])
        self.bg_std_lf = np.empty(n_c)
        self.bg_std_hg = np.empty(n_c)
        for c in range(n_c):
            s = layout.shaft[c]
            members = np.flatnonzero(layout.shaft == s)
            self.bg_std_lf[c] = self.amp[c] * np.sqrt(mix_sq[c] @ lf_frac[members])
            hg_white = _FLOOR**2 * max(0.0, min(170.0, sfreq / 2) - 70.0) / (sfreq / 2)
            self.bg_std_hg[c] = np.sqrt(self.amp[c] ** 2 * (mix_sq[c] @ hg_frac[members]) + hg_white)
        # gain drift over days
        steps = rng.normal(0.0, 0.1, (n_c, max(n_days, 1)))
        steps[:, 0] = 0.0
        self.log_gain = np.cumsum(steps, axis=1)
        # line noise
        n_harm = sum(1 for h in (1, 2, 3) if line_freq > 0 and h * line_freq < sfreq / 2)
        base = rng.uniform(10e-6, 40e-6, len(layout.ch_names))
        ratios = np.c_[np.ones(base.size), rng.uniform(0.2, 0.5, base.size), rng.uniform(0.1, 0.3, base.size)]
        self.line_amp = (base[:, None] * ratios)[:, :n_harm]
        self.line_amp[n_c + 2 :] = 0.0  # DC channels: no mains pickup
        self.line_amp[n_c : n_c + 2] *= 0.2
        self.line_phase = rng.uniform(0, 2 * np.pi, self.line_amp.shape)
        # responsive contacts: contiguous runs on shafts
        n_resp = int(round(responsive_fraction * n_c))
        per_shaft = np.zeros(n_shafts, int)
        for k, s in enumerate(rng.permutation(n_shafts)):
            per_shaft[s] = n_resp // n_shafts + (1 if k < n_resp % n_shafts else 0)
        per_shaft = np.minimum(per_shaft, cps)
        responsive = []
        for s in range(n_shafts):
            if per_shaft[s]:
                start = int(rng.integers(0, cps - per_shaft[s] + 1))
                responsive.extend(s * cps + start + np.arange(per_shaft[s]))
        self.responsive = np.array(sorted(responsive), int)
        # artefacts among the others
        others = np.setdiff1d(np.arange(n_c), self.responsive)
        if others.size < 2:
            others = np.arange(n_c)
        flat, noisy = rng.choice(others, 2, replace=False)
        self.flat, self.noisy = int(flat), int(noisy)
        self.flat_value = float(rng.uniform(-20e-6, 20e-6))
        self.noisy_std = 500e-6
        # response parameters, smooth along the shaft
        pos = np.arange(cps)
        smooth = np.exp(-0.5 * ((pos[:, None] - pos[None, :]) / 1.2) ** 2)
        smooth /= np.linalg.norm(smooth, axis=1, keepdims=True)
        w_all = np.concatenate([smooth @ rng.standard_normal((cps, n_features)) for _ in range(n_shafts)])
        lag_shaft = rng.uniform(0.1, 0.2, n_shafts)
        lag_dev = np.concatenate([smooth @ rng.normal(0, 0.03, cps) for _ in range(n_shafts)])
        self.weights = w_all[self.responsive]
        self.weights /= np.linalg.norm(self.weights, axis=1, keepdims=True)
        self.lag = np.clip(lag_shaft[layout.shaft[self.responsive]] + lag_dev[self.responsive], 0.08, 0.25)
        if positions is not None:  # an anatomical map shared by every patient: responses follow the place
            self.weights, self.lag = shared_map(positions[self.responsive], n_features)
        self.shape = rng.uniform(3.0, 5.0, n_shafts)[layout.shaft[self.responsive]]
        self.undershoot = rng.uniform(0.3, 0.6, n_shafts)[layout.shaft[self.responsive]]
        tau = np.arange(int(0.6 * frame_rate)) / frame_rate
        self.kernel_times = tau
        self.kernels = np.empty((self.responsive.size, tau.size))
        self.hg_kernels = np.empty_like(self.kernels)
        for r in range(self.responsive.size):
            pos_lobe = _gamma_bump(tau, self.shape[r], self.lag[r])
            h = pos_lobe - self.undershoot[r] * _gamma_bump(tau, self.shape[r], 2 * self.lag[r])
            h *= np.hanning(2 * tau.size)[tau.size :] ** 0.5  # taper to zero at 0.6 s
            self.kernels[r] = h / np.linalg.norm(h)
            self.hg_kernels[r] = pos_lobe / pos_lobe.sum()
        self._lowpass = butter(4, min(15.0, 0.4 * frame_rate), fs=frame_rate, output="sos")
        # set by calibrate()
        self.feat_mean = np.zeros(n_features)
        self.feat_std = np.ones(n_features)
        self.resp_offset = np.zeros(self.responsive.size)
        self.resp_scale = np.zeros(self.responsive.size)
        self.hg_amp = np.zeros(self.responsive.size)

    # ------------------------------------------------------------------------------------------------------------
    def _drives(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unscaled low-frequency drive and high-gamma drive, each ``(n_responsive, n_frames)`` at the frame rate."""
        z = (features - self.feat_mean[:, None]) / self.feat_std[:, None]
        n_frames = z.shape[1]
        lf = np.empty((self.responsive.size, n_frames))
        hg = np.empty_like(lf)
        env = z[-1]
        for r in range(self.responsive.size):
            x = self.weights[r] @ z
            lf[r] = lfilter(self.kernels[r], [1.0], x)
            hg[r] = lfilter(self.hg_kernels[r], [1.0], env)
        if n_frames > 30:
            lf = sosfiltfilt(self._lowpass, lf, axis=1)
        return lf, hg

    def calibrate(self, features: np.ndarray) -> None:
        """Fix the feature statistics and the response scales on a calibration scene.

        Parameters
        ----------
        features : ndarray, shape (n_features, n_frames)
            Stimulus features of a day-like calibration scene.
        """
        self.feat_mean = features.mean(axis=1)
        self.feat_std = features.std(axis=1) + 1e-6
        lf, _ = self._drives(features)
        self.resp_offset = lf.mean(axis=1)
        band = butter(4, [0.5, min(20.0, 0.45 * self.frame_rate)], btype="band", fs=self.frame_rate, output="sos")
        lf_band = sosfiltfilt(band, lf, axis=1) if lf.shape[1] > 60 else lf - self.resp_offset[:, None]
        self.resp_scale = self.snr * self.bg_std_lf[self.responsive] / (lf_band.std(axis=1) + 1e-12)
        self.hg_amp = self.hg_snr * self.bg_std_hg[self.responsive] / _softplus(np.array(1.0))

    # ------------------------------------------------------------------------------------------------------------
    def render(
        self,
        features: np.ndarray,
        n_times: int,
        t0: float,
        day: int,
        rng: np.random.Generator,
        added: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Simulate one block.

        Parameters
        ----------
        features : ndarray, shape (n_features, n_frames)
            Stimulus features of the block's audio at ``frame_rate``; frame ``k`` at ``k / frame_rate`` s.
        n_times : int
            Samples of the block at ``sfreq``.
        t0 : float
            Start of the block on the wall clock, seconds since the first block (line-noise phase).
        day : int
            Day index (0-based) for the gain drift.
        rng : numpy.random.Generator
            Block randomness.
        added : (ndarray of int, ndarray of shape (n, n_frames)), optional
            Contacts and extra signals (V) at ``frame_rate`` added to them before the gain drift (the semantic
            component of the task session, :mod:`ieegfm.simulate.semantics`).

        Returns
        -------
        data : ndarray, shape (n_chans, n_times)
            The block in volts, channels in ``layout.ch_names`` order.
        """
        lay, sfreq = self.layout, self.sfreq
        n_c = lay.n_contacts
        data = np.empty((len(lay.ch_names), n_times))
        times = np.arange(n_times) / sfreq
        # background, shaft by shaft
        for s, mix in enumerate(self.mix):
            members = np.flatnonzero(lay.shaft == s)
            z = _colored_unit_noise(rng, self.beta[members], n_times, sfreq)
            data[members] = (mix @ z) * self.amp[members, None]
        data[:n_c] += rng.standard_normal((n_c, n_times)) * _FLOOR
        # responses
        if self.responsive.size:
            lf, hg = self._drives(features)
            frame_times = np.arange(features.shape[1]) / self.frame_rate
            carrier = _band_noise(rng, self.responsive.size, n_times, sfreq, (70.0, 170.0))
            for r, c in enumerate(self.responsive):
                lf_r = (lf[r] - self.resp_offset[r]) * self.resp_scale[r]
                data[c] += np.interp(times, frame_times, lf_r)
                data[c] += carrier[r] * self.hg_amp[r] * np.interp(times, frame_times, _softplus(hg[r]))
            del carrier
        if added is not None:
            frame_times = np.arange(added[1].shape[1]) / self.frame_rate
            for c, signal in zip(added[0], added[1]):
                data[c] += np.interp(times, frame_times, signal)
        data[:n_c] *= np.exp(self.log_gain[:, min(day, self.log_gain.shape[1] - 1)])[:, None]
        # artefacts
        data[self.noisy] += rng.standard_normal(n_times) * self.noisy_std
        # non-neural
        data[n_c : n_c + 2] = self._ekg(rng, n_times)
        data[n_c + 2 :] = self._dc(rng, n_times)
        # line noise (wall-clock phase)
        for h in range(self.line_amp.shape[1]):
            f = (h + 1) * self.line_freq
            phase0 = 2 * np.pi * ((f * t0) % 1.0)
            base = 2 * np.pi * f * times + phase0
            for ch in np.flatnonzero(self.line_amp[:, h]):
                data[ch] += self.line_amp[ch, h] * np.cos(base + self.line_phase[ch, h])
        data[self.flat] = self.flat_value
        return data

    def _ekg(self, rng: np.random.Generator, n_times: int) -> np.ndarray:
        sfreq = self.sfreq
        duration = n_times / sfreq
        rate = rng.uniform(60, 80) / 60.0
        beats = [rng.uniform(0, 1 / rate)]
        while beats[-1] < duration + 1:
            beats.append(beats[-1] + (1 / rate) * (1 + 0.05 * rng.standard_normal()))
        waves = [
            (0.12, -0.2, 0.025),
            (-0.12, -0.03, 0.008),
            (1.0, 0.0, 0.010),
            (-0.3, 0.03, 0.010),
            (0.3, 0.25, 0.045),
        ]  # (mV, s from R, width s): P, Q, R, S, T
        t = np.arange(int(0.9 * sfreq)) / sfreq - 0.35
        template = sum(a * np.exp(-0.5 * ((t - mu) / w) ** 2) for a, mu, w in waves) * 1e-3
        spikes = np.zeros(n_times + t.size)
        for b in beats:
            i = int(round(b * sfreq))
            if 0 <= i < n_times:
                spikes[i] = 1.0
        ekg = np.convolve(spikes, template)[int(0.35 * sfreq) : int(0.35 * sfreq) + n_times]
        times = np.arange(n_times) / sfreq
        wander = 0.1e-3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * times + rng.uniform(0, 2 * np.pi))
        out = np.empty((2, n_times))
        out[0] = 1.2 * ekg + wander + rng.standard_normal(n_times) * 10e-6
        out[1] = -0.8 * ekg + 0.5 * wander + rng.standard_normal(n_times) * 10e-6
        return out

    def _dc(self, rng: np.random.Generator, n_times: int) -> np.ndarray:
        sfreq = self.sfreq
        out = np.empty((2, n_times))
        level, i = rng.uniform(-50e-3, 50e-3), 0
        while i < n_times:
            j = min(n_times, i + int(rng.exponential(60.0) * sfreq) + 1)
            out[0, i:j] = level
            level, i = rng.uniform(-50e-3, 50e-3), j
        step = max(1, int(sfreq))
        walk = np.cumsum(rng.normal(0, 0.1e-3, n_times // step + 2))
        out[1] = np.interp(np.arange(n_times), np.arange(walk.size) * step, walk)
        return out

    # ------------------------------------------------------------------------------------------------------------
    def truth(self) -> dict:
        """JSON-able ground truth of the static parameters."""
        lay = self.layout
        names = lay.ch_names
        return {
            "contacts": names[: lay.n_contacts],
            "shafts": lay.shaft_names,
            "non_neural": {"ecg": _EKG, "misc": _DC},
            "background": {
                "spectrum": "1 / (f^2 + f_knee^2)^(beta / 2), mixed along the shaft with rho^|i-j|",
                "f_knee_hz": _F_KNEE,
                "amplifier_floor_v": _FLOOR,
                "beta": dict(zip(names, self.beta.round(4).tolist())),
                "std_v": dict(zip(names, self.amp.tolist())),
                "shaft_rho": dict(zip(lay.shaft_names, self.rho.round(4).tolist())),
                "std_0.5_20hz_v": dict(zip(names, self.bg_std_lf.tolist())),
                "std_70_170hz_v": dict(zip(names, self.bg_std_hg.tolist())),
            },
            "responsive": {
                names[c]: {
                    "lag_s": round(float(self.lag[r]), 4),
                    "gamma_shape": round(float(self.shape[r]), 4),
                    "undershoot": round(float(self.undershoot[r]), 4),
                    "weights": self.weights[r].round(5).tolist(),
                    "kernel": self.kernels[r].round(6).tolist(),
                    "hg_kernel": self.hg_kernels[r].round(6).tolist(),
                    "lf_scale_v": float(self.resp_scale[r]),
                    "lf_offset": float(self.resp_offset[r]),
                    "hg_amp_v": float(self.hg_amp[r]),
                }
                for r, c in enumerate(self.responsive)
            },
            "kernel_frame_rate_hz": self.frame_rate,
            "snr": self.snr,
            "hg_snr": self.hg_snr,
            "feature_mean": self.feat_mean.round(6).tolist(),
            "feature_std": self.feat_std.round(6).tolist(),
            "bad_channels": {
                names[self.flat]: {"why": "flat", "value_v": self.flat_value, "channels_tsv_status": "good"},
                names[self.noisy]: {
                    "why": "broadband noise",
                    "added_noise_std_v": self.noisy_std,
                    "channels_tsv_status": "bad",
                },
            },
            "line_noise": {
                "freq_hz": self.line_freq,
                "amplitude_v": {n: a.tolist() for n, a in zip(names, self.line_amp)},
            },
            "gain_drift": {
                "log_gain_step_sd": 0.1,
                "gain": {n: np.exp(g).round(5).tolist() for n, g in zip(names, self.log_gain)},
            },
        }
