"""Ridge regression cross-validated by group, with the penalty of each target chosen by GCV: the one regression
of the analyses (day decoding in :mod:`ieegfm.analysis.drift`, encoding models in :mod:`ieegfm.analysis.encode`),
built so that their nulls (permuted or shifted targets) refit nothing that depends on the features."""

from __future__ import annotations

import numpy as np

#: penalties tried by default (on standardised features)
ALPHAS = np.logspace(-1, 6, 15)


class FoldedRidge:
    """Ridge regression cross-validated by group, one penalty per target chosen by generalised cross-validation
    (GCV, Golub, Heath & Wahba 1979) on each fold's training rows, as scikit-learn's ``RidgeCV`` does.

    Everything that depends on the features alone (standardisation, the eigendecomposition of ``X'X`` per fold,
    the held-out rows in its eigenbasis) is computed once, so scoring another target matrix (the null's shifted
    targets) costs two products per fold instead of a refit.

    Parameters
    ----------
    x : ndarray, shape (n_rows, n_columns)
        Features (standardised per fold with the training rows' mean and std).
    groups : ndarray, shape (n_rows,)
        Cross-validation groups (blocks): no group in both the fitted and the scored rows.
    n_folds : int
        ``GroupKFold`` folds (at most the number of groups).
    alphas : ndarray
        Penalties tried (on standardised features).

    Raises
    ------
    ValueError
        Fewer groups than folds (scikit-learn's ``GroupKFold``).
    """

    def __init__(self, x: np.ndarray, groups: np.ndarray, n_folds: int, alphas: np.ndarray = ALPHAS) -> None:
        from sklearn.model_selection import GroupKFold

        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.folds = []
        for train, test in GroupKFold(n_splits=n_folds).split(x, groups=groups):
            mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
            xtr = ((x[train] - mu) / sd).astype(np.float64)
            s, v = np.linalg.eigh(xtr.T @ xtr)
            s = np.clip(s, 0, None)
            self.folds.append((train, test, xtr @ v, ((x[test] - mu) / sd).astype(np.float64) @ v, s))

    def predict(self, y: np.ndarray) -> np.ndarray:
        """Held-out predictions of every row.

        Parameters
        ----------
        y : ndarray, shape (n_rows, n_targets)

        Returns
        -------
        ndarray, shape (n_rows, n_targets), float64
            Each row predicted by the model of the fold that held it out.
        """
        pred = np.empty_like(y, dtype=np.float64)
        for train, test, xtr_v, xte_v, s in self.folds:
            ytr = y[train]
            mean = ytr.mean(0)
            yc = ytr - mean
            z = xtr_v.T @ yc  # (p, n_targets): X'y in the eigenbasis
            n = len(train)
            shrink = 1.0 / (s[:, None, None] + self.alphas[None, :, None])  # (p, n_alphas, 1)
            zz = z[:, None, :] ** 2  # (p, 1, n_targets)
            rss = (yc**2).sum(0)[None, :] - 2 * (zz * shrink).sum(0) + (s[:, None, None] * zz * shrink**2).sum(0)
            df = (s[:, None] / (s[:, None] + self.alphas[None, :])).sum(0)  # (n_alphas,)
            gcv = n * rss / (n - df[:, None]) ** 2  # (n_alphas, n_targets)
            best = self.alphas[np.argmin(gcv, axis=0)]  # (n_targets,)
            pred[test] = xte_v @ (z / (s[:, None] + best[None, :])) + mean
        return pred
