"""``ieegfm encode``: per-electrode encoding models, the audio features predicting each channel's signal.

The classic forward model of auditory iEEG (temporal receptive fields: e.g. Holdgraf et al. 2017, Frontiers in
Systems Neuroscience; seed 001-style analyses): each channel's low-frequency signal (as packed: robust-scaled,
0.05-50 Hz at the shards' rate) is predicted from the audio features of the preceding ``lags_s`` (the packed
targets: log-mel or a wav2vec 2.0 layer) by ridge regression (one penalty per channel by GCV, as ``RidgeCV``),
cross-validated by block (no block in both the fitted and the scored data). Scores per channel: Pearson r and R²
of the held-out predictions. The null keeps each signal's own autocorrelation and each block's statistics: the
targets are shifted circularly within their block by a random offset (at least ``min_shift_s``) and the whole
cross-validation is rerun, ``n_shifts`` times. p = (1 + #null r >= r) / (1 + n_shifts); ``significant`` after
Benjamini-Hochberg at 0.05 over channels.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from ieegfm.analysis.ridge import FoldedRidge
from ieegfm.data.tar import decode_sample, tar_samples
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.manifest import read_manifest

logger = logging.getLogger(__name__)


def lagged(x: np.ndarray, lags: list[int]) -> np.ndarray:
    """Design matrix of features at ``lags`` (bins; positive: the feature precedes the signal).

    Parameters
    ----------
    x : ndarray, shape (n_features, n_times)
    lags : list of int

    Returns
    -------
    ndarray, shape (n_times, n_features * len(lags))
        Zero where a lag reaches before the start.
    """
    f, n = x.shape
    out = np.zeros((n, f * len(lags)), dtype=np.float32)
    for k, lag in enumerate(lags):
        cols = slice(k * f, (k + 1) * f)
        if lag >= 0:
            out[lag:, cols] = x[:, : n - lag].T
        else:
            out[:lag, cols] = x[:, -lag:].T
    return out


def _r_r2(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pc, yc = pred - pred.mean(0), y - y.mean(0)
    r = (pc * yc).sum(0) / np.sqrt((pc**2).sum(0) * (yc**2).sum(0) + 1e-30)
    r2 = 1 - ((y - pred) ** 2).sum(0) / ((yc**2).sum(0) + 1e-30)
    return r, r2


def encoding_scores(
    x: np.ndarray,
    y: np.ndarray,
    block: np.ndarray,
    n_shifts: int = 50,
    min_shift: int = 1,
    n_folds: int = 5,
    seed: int = 0,
) -> dict:
    """Cross-validated encoding scores per target, with a circular-shift null.

    Parameters
    ----------
    x : ndarray, shape (n_times, n_columns)
        Lagged features (:func:`lagged`), rows in time order within each block.
    y : ndarray, shape (n_times, n_channels)
        Targets.
    block : ndarray, shape (n_times,)
        Block of each row: the cross-validation groups and the unit the null shifts within.
    n_shifts : int
        Circular shifts of the null.
    min_shift : int
        Smallest shift (rows).
    n_folds : int
        Folds at most (``GroupKFold``).
    seed : int

    Returns
    -------
    dict
        ``r``, ``r2``, ``p_value``, ``null_r_95`` (n_channels,) arrays, ``n_shifts``, ``n_folds``.

    Raises
    ------
    InputError
        Fewer than 2 blocks, or a block shorter than twice ``min_shift``.
    """
    block = np.asarray(block).astype(str)
    names = list(dict.fromkeys(block))
    if len(names) < 2:
        raise InputError(f"encoding models: {len(names)} block; expected at least 2 (cross-validated by block)")
    rows = {b: np.flatnonzero(block == b) for b in names}
    if min(len(i) for i in rows.values()) < 2 * min_shift:
        raise InputError(f"encoding models: a block is shorter than twice the null's smallest shift ({min_shift} bins)")
    folds = min(n_folds, len(names))
    ridge = FoldedRidge(x, block, folds)
    r, r2 = _r_r2(ridge.predict(y), y)
    rng = np.random.default_rng([seed, 131071])
    null = np.empty((n_shifts, y.shape[1]))
    for k in range(n_shifts):
        shifted = np.empty_like(y)
        for i in rows.values():
            shifted[i] = np.roll(y[i], int(rng.integers(min_shift, len(i) - min_shift + 1)), axis=0)
        null[k] = _r_r2(ridge.predict(shifted), shifted)[0]
    return {
        "r": r,
        "r2": r2,
        "p_value": (1 + (null >= r[None, :]).sum(0)) / (1 + n_shifts),
        "null_r_95": np.percentile(null, 95, axis=0) if n_shifts else np.full(len(r), np.nan),
        "n_shifts": n_shifts,
        "n_folds": folds,
    }


def shaft_of(name: str) -> str:
    """The electrode (shaft) of a channel name: its leading letters (``LA3-LA4`` -> ``LA``, ``A'1`` -> ``A'``)."""
    m = re.match(r"[^\d]+", name)
    return m.group(0).rstrip("-") if m else name


def _bins(a: np.ndarray, k: int) -> np.ndarray:
    n = a.shape[1] // k * k
    return a[:, :n].reshape(a.shape[0], -1, k).mean(axis=2)


def encode(cfg) -> dict:
    """Fit and score the encoding models of one subject; write ``encoding.json`` and ``encoding.png``.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.EncodeConfig`.

    Returns
    -------
    dict
        ``channels``: channel name -> ``r``, ``r2``, ``p_value``, ``null_r_95``, ``significant``, ``shaft``; and
        ``subject``, ``features``, ``band``, ``target``, ``lags_s``, ``bin_s``, ``hours``, ``n_blocks``, ``cv``, ``null``.

    Raises
    ------
    InputError
        No manifest; ``features`` other than the shards'; a ``band`` the shards do not hold; several subjects and
        no ``subject``; audio stored as bin
        means coarser than ``bin_s``; fewer than 2 blocks.
    ConfigError
        ``bin_s`` not a whole number of samples, lags not increasing.
    """
    from scipy.stats import false_discovery_control

    root = Path(cfg.shards)
    manifest = read_manifest(root)
    packed = (manifest.audio or {}).get("features")
    if cfg.features != "shards" and cfg.features != packed:
        raise InputError(
            f"shards={root}: hold {packed} audio features; features={cfg.features} needs shards packed with "
            f"audio.features={cfg.features} (or features=shards)"
        )
    subjects = list(manifest.subjects)
    subject = cfg.subject or (subjects[0] if len(subjects) == 1 else None)
    if subject not in manifest.subjects:
        raise InputError(f"shards={root}: subjects {subjects}; expected subject= one of them")
    bands = list(manifest.bands)
    band = cfg.get("band") or ("highgamma" if "highgamma" in bands else bands[0])
    if band not in bands:
        raise InputError(f"shards={root}: hold bands {bands}; band={band} is not one of them")
    all_names = list(manifest.subjects[subject].ch_names)
    n_per_band = len(all_names) // len(bands)
    rows = slice(bands.index(band) * n_per_band, (bands.index(band) + 1) * n_per_band)
    sfreq = manifest.sfreq
    audio_sfreq = manifest.audio_sfreq
    step = int(round(sfreq / audio_sfreq))
    k = cfg.bin_s * sfreq
    if abs(k - round(k)) > 1e-6 or round(k) < 1:
        raise ConfigError(f"bin_s={cfg.bin_s}: expected a whole number of samples at {sfreq:g} Hz")
    k = int(round(k))
    if k % step:
        raise InputError(
            f"shards={root}: audio stored as {step / sfreq:g}-s bin means (audio.pool_s); bin_s={cfg.bin_s} needs "
            "a multiple of it (repack with audio.pool_s=0 for fine lags)"
        )
    lags = sorted({int(round(t / cfg.bin_s)) for t in np.arange(cfg.tmin_s, cfg.tmax_s + 1e-9, cfg.bin_s)})
    if not lags:
        raise ConfigError(f"tmin_s={cfg.tmin_s}, tmax_s={cfg.tmax_s}: expected tmin_s <= tmax_s")
    xs, ys, blocks, hours = [], [], [], 0.0
    per_block: dict[str, float] = {}
    for sp in cfg.splits:
        for entry in manifest.entries(sp):
            for raw in tar_samples(iter([{"url": str(root / entry.name)}])):
                s = decode_sample(raw)
                meta = s["meta"]
                if meta["subject"] != subject:
                    continue
                dur = s["brain"].shape[1] / sfreq / 3600
                if cfg.max_hours_per_block and per_block.get(meta["block"], 0.0) + dur > cfg.max_hours_per_block:
                    continue
                per_block[meta["block"]] = per_block.get(meta["block"], 0.0) + dur
                brain = _bins(s["brain"][rows].astype(np.float32), k)
                audio = _bins(s["audio"].astype(np.float32), k // step)
                n = min(brain.shape[1], audio.shape[1])
                x = lagged(audio[:, :n], lags)
                first = max(lags[-1], 0)  # rows whose lags reach before the chunk are dropped
                last = n + min(lags[0], 0)
                xs.append(x[first:last])
                ys.append(brain[:, first:last].T)
                blocks += [meta["block"]] * (last - first)
                hours += dur
    if not xs:
        raise InputError(f"shards={root}: no windows of subject {subject!r} in splits {list(cfg.splits)}")
    names = all_names[rows]
    scores = encoding_scores(
        np.concatenate(xs),
        np.concatenate(ys).astype(np.float64),
        np.asarray(blocks),
        n_shifts=cfg.n_shifts,
        min_shift=max(1, int(round(cfg.min_shift_s / cfg.bin_s))),
        seed=cfg.seed,
    )
    significant = false_discovery_control(scores["p_value"]) < 0.05
    result = {
        "shards": str(root),
        "subject": subject,
        "features": packed,
        "band": band,
        "target": "low-frequency signal as packed (robust-scaled, 0.05-50 Hz by default)"
        if band == "lfp"
        else f"{band} Hilbert envelope as packed (robust-scaled)",
        "lags_s": [lag * cfg.bin_s for lag in lags],
        "bin_s": cfg.bin_s,
        "hours": hours,
        "n_blocks": len(set(blocks)),
        "cv": f"ridge (one penalty per channel by GCV, standardised lagged features), GroupKFold by block "
        f"({scores['n_folds']} folds)",
        "null": f"{scores['n_shifts']} circular shifts of the targets within each block (at least {cfg.min_shift_s} s); "
        "significant: Benjamini-Hochberg q < 0.05 over channels",
        "channels": {
            name: {
                "r": float(scores["r"][i]),
                "r2": float(scores["r2"][i]),
                "p_value": float(scores["p_value"][i]),
                "null_r_95": float(scores["null_r_95"][i]),
                "significant": bool(significant[i]),
                "shaft": shaft_of(name),
            }
            for i, name in enumerate(names)
        },
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoding.json").write_text(json.dumps(result, indent=1))
    plot_encoding(result, out / "encoding.png")
    top = sorted(result["channels"].items(), key=lambda kv: -kv[1]["r"])[:5]
    logger.info(
        "encode %s: %d of %d channels significant; top r %s",
        subject,
        int(significant.sum()),
        len(names),
        ", ".join(f"{n} {v['r']:.2f}" for n, v in top),
    )
    return result


def plot_encoding(result: dict, path: Path) -> None:
    """PNG: held-out r per channel, grouped by shaft, with the null's 95th percentile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["channels"])
    ch = result["channels"]
    fig, ax = plt.subplots(figsize=(max(5, 0.22 * len(names) + 1.5), 3.4), dpi=110)
    shafts = list(dict.fromkeys(ch[n]["shaft"] for n in names))
    colours = plt.get_cmap("tab10")
    for i, n in enumerate(names):
        c = colours(shafts.index(ch[n]["shaft"]) % 10)
        ax.bar(i, ch[n]["r"], color=c, alpha=1.0 if ch[n]["significant"] else 0.35)
        ax.plot([i - 0.4, i + 0.4], [ch[n]["null_r_95"]] * 2, color="k", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("held-out Pearson r")
    ax.set_title(
        f"{result['subject']}: {result['features']} -> signal, lags {result['lags_s'][0]:g}-{result['lags_s'][-1]:g} s;"
        " faded: not significant; ticks: null 95%",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
