"""Per-channel scalers fitted on training data only, in a streaming, deterministic way.

:class:`RobustScaler` (median / IQR, clamp at +-20) scales the iEEG as in arXiv 2512.15830 [1]_;
:class:`StandardScaler` (mean / std, Chan et al. merging [2]_) z-scores the audio targets. Both are
fitted chunk by chunk with bounded memory and serialise to JSON-friendly dicts, so the shard
manifest can record the scaling that was applied.

References
----------
.. [1] arXiv 2512.15830 (robust scaling per channel, clamp at +-20).
.. [2] Chan, T. F., Golub, G. H., & LeVeque, R. J. (1983). Algorithms for computing the sample
       variance: analysis and recommendations. The American Statistician, 37(3), 242-247.
"""

from __future__ import annotations

import numpy as np

from ._validate import _check_float

__all__ = ["SCALING_RULES", "RobustScaler", "StandardScaler"]

#: ``preprocess.scale_by`` -> what it does, as the manifest states it (applied by :mod:`ieegfm.shards.scalers`)
SCALING_RULES = {
    "train": "robust scaling per subject fitted on its training blocks (subjects.<s>.scaler)",
    "day": "robust scaling per subject and local recording day, fitted on all of that day's blocks (every split; no "
    "labels), so a day's gain drift is divided out",
    "block": "robust scaling per block, fitted on the block itself (every split; no labels)",
}


def _check_data(data, n_chans: int | None, valid) -> tuple[np.ndarray, np.ndarray | None]:
    data = np.asarray(data)
    if data.ndim != 2 or data.dtype.kind not in "fiu":
        raise ValueError(f"data must be a real array of shape (n_chans, n_times), got {data.shape}.")
    if n_chans is not None and data.shape[0] != n_chans:
        raise ValueError(f"data must have n_chans={n_chans} rows (as fitted so far), got {data.shape[0]}.")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (data.shape[1],):
            raise ValueError(f"valid must have shape (n_times,)=({data.shape[1]},), got {valid.shape}.")
    return data, valid


def _floats(params: dict, owner: str, *names: str) -> list[np.ndarray]:
    """The 1-D float64 arrays ``params[name]`` of a ``to_dict`` output; ValueError naming a missing key."""
    arrays = []
    for name in names:
        if name not in params:
            raise ValueError(f"{owner}.from_dict needs key {name!r}.")
        arr = np.asarray(params[name], dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a list of floats, got shape {arr.shape}.")
        arrays.append(arr)
    return arrays


class RobustScaler:
    """Per-channel median / IQR scaling, fitted on a bounded, deterministic subsample.

    :meth:`partial_fit` keeps every ``stride``-th valid sample (counted over the whole stream,
    so the kept samples do not depend on how the data are chunked). When ``max_samples`` are
    held, every other kept sample is dropped and the stride doubles, so memory stays at most
    ``n_chans * max_samples`` float32 values and the subsample stays spread over the whole
    training period. No random numbers are drawn.

    Parameters
    ----------
    max_samples : int
        Maximum number of time samples kept per channel (>= 2). Default 100000.
    clamp : float
        Default clamp of :meth:`transform` (> 0), in IQR units.

    Attributes
    ----------
    center_ : ndarray of float64, shape (n_chans,)
        Median per channel (V).
    scale_ : ndarray of float64, shape (n_chans,)
        Interquartile range per channel (V); 1.0 for a channel whose IQR is 0 or undefined.
    n_samples_seen_ : int
        Valid samples offered to :meth:`partial_fit`.

    References
    ----------
    .. [1] arXiv 2512.15830 (robust scaling per channel fitted on training data, clamp +-20).
    """

    def __init__(self, max_samples: int = 100_000, clamp: float = 20.0) -> None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 2:
            raise ValueError(f"max_samples must be an integer >= 2, got {max_samples!r}.")
        self.max_samples = int(max_samples)
        self.clamp = _check_float("clamp", clamp, low=0.0)
        self.n_chans = None
        self.n_samples_seen_ = 0
        self._stride = 1
        self._kept: list[np.ndarray] = []
        self._n_kept = 0
        self._center = None
        self._scale = None

    def partial_fit(self, data, valid=None) -> RobustScaler:
        """Add training samples.

        Parameters
        ----------
        data : array-like, shape (n_chans, n_times)
            Training signal (V). Non-finite values are ignored per channel.
        valid : array-like of bool, shape (n_times,) | None
            Samples to use (e.g. the ``valid`` mask of the preprocessor); None uses all.

        Returns
        -------
        self : RobustScaler

        Raises
        ------
        ValueError
            If ``data`` is not 2-D, its n_chans changes between calls, or ``valid`` has the
            wrong shape.
        """
        data, valid = _check_data(data, self.n_chans, valid)
        self.n_chans = data.shape[0]
        if valid is not None:
            data = data[:, valid]
        n = data.shape[1]
        first = (-self.n_samples_seen_) % self._stride  # global valid index multiple of stride
        self._kept.append(np.asarray(data[:, first :: self._stride], dtype=np.float32))
        self._n_kept += self._kept[-1].shape[1]
        self.n_samples_seen_ += n
        while self._n_kept > self.max_samples:
            kept = np.concatenate(self._kept, axis=1)[:, ::2]
            self._kept = [kept]
            self._n_kept = kept.shape[1]
            self._stride *= 2
        self._center = self._scale = None
        return self

    def fit_finalize(self) -> RobustScaler:
        """Compute :attr:`center_` and :attr:`scale_` from the kept samples.

        Raises
        ------
        ValueError
            If no sample was fitted.
        """
        if self._n_kept == 0:
            raise ValueError("RobustScaler has no samples: call partial_fit on training data first.")
        kept = np.concatenate(self._kept, axis=1)
        self._kept = [kept]
        q25, q50, q75 = np.nanquantile(kept.astype(np.float64), [0.25, 0.5, 0.75], axis=1)
        iqr = q75 - q25
        self._center = np.where(np.isfinite(q50), q50, 0.0)
        self._scale = np.where(np.isfinite(iqr) & (iqr > 0), iqr, 1.0)
        return self

    @property
    def center_(self) -> np.ndarray:
        if self._center is None:
            self.fit_finalize()
        return self._center

    @property
    def scale_(self) -> np.ndarray:
        if self._scale is None:
            self.fit_finalize()
        return self._scale

    def transform(self, data, clamp: float | None = None) -> np.ndarray:
        """Scale and clamp.

        Parameters
        ----------
        data : array-like, shape (n_chans, n_times)
            Signal (V).
        clamp : float | None
            Clamp at +-clamp after scaling (IQR units); None uses ``self.clamp`` (20).

        Returns
        -------
        scaled : ndarray of float32, shape (n_chans, n_times)
            ``clip((data - center_) / scale_, -clamp, clamp)`` (dimensionless).

        Raises
        ------
        ValueError
            If ``data`` does not have n_chans rows.
        """
        clamp = self.clamp if clamp is None else _check_float("clamp", clamp, low=0.0)
        data, _ = _check_data(data, self.n_chans if self._center is None else len(self.center_), None)
        out = (data - self.center_[:, None]) / self.scale_[:, None]
        return np.clip(out, -clamp, clamp).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-friendly parameters: ``{'kind', 'center', 'scale', 'clamp', 'n_samples_seen'}``."""
        return {
            "kind": "robust",
            "center": [float(v) for v in self.center_],
            "scale": [float(v) for v in self.scale_],
            "clamp": self.clamp,
            "n_samples_seen": int(self.n_samples_seen_),
        }

    @classmethod
    def from_dict(cls, params: dict) -> RobustScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output (transform only).

        Raises
        ------
        ValueError
            If ``center`` and ``scale`` are missing or of different lengths.
        """
        center, scale = _floats(params, "RobustScaler", "center", "scale")
        if center.shape != scale.shape:
            raise ValueError(f"center and scale must have the same length, got {center.shape} and {scale.shape}.")
        self = cls(clamp=params.get("clamp", 20.0))
        self.n_chans = len(center)
        self.n_samples_seen_ = int(params.get("n_samples_seen", 0))
        self._center, self._scale = center, scale
        return self


class StandardScaler:
    """Per-channel mean / standard deviation, merged exactly across chunks (float64).

    Each chunk's count, mean and sum of squared deviations are merged with Chan et al.'s
    pairwise update, which is exact (up to rounding) and stable whatever the chunking.

    Attributes
    ----------
    mean_ : ndarray of float64, shape (n_chans,)
        Mean per channel (row), e.g. per audio feature.
    var_ : ndarray of float64, shape (n_chans,)
        Population variance per channel.
    scale_ : ndarray of float64, shape (n_chans,)
        ``sqrt(var_)``; 1.0 where the variance is 0 or no sample was seen.
    n_samples_seen_ : ndarray of int64, shape (n_chans,)
        Finite valid samples per channel.

    References
    ----------
    .. [1] Chan, T. F., Golub, G. H., & LeVeque, R. J. (1983). The American Statistician,
           37(3), 242-247.
    """

    def __init__(self) -> None:
        self.n_chans = None
        self.n_samples_seen_ = None
        self.mean_ = None
        self._m2 = None

    def partial_fit(self, data, valid=None) -> StandardScaler:
        """Merge the statistics of one chunk.

        Parameters
        ----------
        data : array-like, shape (n_chans, n_times)
            Training values, e.g. audio features ``(n_features, n_frames)``. Non-finite values
            are ignored per channel.
        valid : array-like of bool, shape (n_times,) | None
            Samples to use; None uses all.

        Returns
        -------
        self : StandardScaler

        Raises
        ------
        ValueError
            If ``data`` is not 2-D, its n_chans changes between calls, or ``valid`` has the
            wrong shape.
        """
        data, valid = _check_data(data, self.n_chans, valid)
        if self.n_chans is None:
            self.n_chans = data.shape[0]
            self.n_samples_seen_ = np.zeros(self.n_chans, np.int64)
            self.mean_ = np.zeros(self.n_chans)
            self._m2 = np.zeros(self.n_chans)
        if valid is not None:
            data = data[:, valid]
        data = data.astype(np.float64)
        finite = np.isfinite(data)
        n_b = finite.sum(axis=1)
        clean = np.where(finite, data, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(n_b > 0, clean.sum(axis=1) / n_b, 0.0)
        m2_b = (np.where(finite, data - mean_b[:, None], 0.0) ** 2).sum(axis=1)
        n_a = self.n_samples_seen_
        n = n_a + n_b
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(n > 0, n_b / np.maximum(n, 1), 0.0)
        delta = mean_b - self.mean_
        self.mean_ = self.mean_ + delta * frac
        self._m2 = self._m2 + m2_b + delta**2 * n_a * frac
        self.n_samples_seen_ = n
        return self

    @property
    def var_(self) -> np.ndarray:
        if self.n_samples_seen_ is None:
            raise ValueError("StandardScaler has no samples: call partial_fit first.")
        return self._m2 / np.maximum(self.n_samples_seen_, 1)

    @property
    def scale_(self) -> np.ndarray:
        std = np.sqrt(self.var_)
        return np.where(std > 0, std, 1.0)

    def transform(self, data) -> np.ndarray:
        """Z-score with the fitted statistics.

        Parameters
        ----------
        data : array-like, shape (n_chans, n_times)

        Returns
        -------
        scaled : ndarray of float32, shape (n_chans, n_times)
            ``(data - mean_) / scale_``.

        Raises
        ------
        ValueError
            If not fitted or ``data`` does not have n_chans rows.
        """
        scale = self.scale_
        data, _ = _check_data(data, self.n_chans, None)
        return ((data - self.mean_[:, None]) / scale[:, None]).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-friendly parameters: ``{'kind', 'mean', 'var', 'n_samples_seen'}``."""
        var = self.var_
        return {
            "kind": "standard",
            "mean": [float(v) for v in self.mean_],
            "var": [float(v) for v in var],
            "n_samples_seen": [int(v) for v in self.n_samples_seen_],
        }

    @classmethod
    def from_dict(cls, params: dict) -> StandardScaler:
        """Rebuild a scaler from :meth:`to_dict` output (it can keep fitting).

        Raises
        ------
        ValueError
            If ``mean`` or ``var`` is missing or the lengths differ.
        """
        mean, var = _floats(params, "StandardScaler", "mean", "var")
        count = np.asarray(params.get("n_samples_seen", np.ones(len(mean))), dtype=np.int64)
        if not (mean.shape == var.shape == count.shape):
            raise ValueError(
                f"mean, var and n_samples_seen must have the same length, got {mean.shape}, "
                f"{var.shape} and {count.shape}."
            )
        self = cls()
        self.n_chans = len(mean)
        self.mean_ = mean
        self.n_samples_seen_ = count
        self._m2 = var * np.maximum(count, 1)
        return self
