"""Label efficiency (``ieegfm compare task_fractions=[...]``): how much less task data pretraining needs.

Every trained condition of the comparison is run again on nested subsets of the task's training split
(:func:`ieegfm.shards.subset.subset_view` with ``fraction``: each subject's recording-order prefix, whole blocks
first, the last cut to a contiguous stretch of chunks; validation and test unchanged, so every run is scored on the
same test windows), each fraction with its own learning rates chosen on validation (:mod:`ieegfm.finetune.tune`).

The **label saving** of a pretrained condition is how many times less task data it needs to match task-only
trained on all of it: ``1 / f*``, where ``f*`` is the smallest kept fraction at which its test mean relative rank
reaches task-only's at fraction 1, interpolated linearly on log fraction between the two fractions around the first
crossing. A condition already there at the smallest fraction gets ``1 / f_min`` (a lower bound, ``censored``); one
that never reaches it has none. The CI is a bootstrap over seeds and test windows (windows resampled within each
subject, the same windows for every condition and fraction: the comparison stays paired), with resamples that do
not reach counted as failures (saving 0), as MAPA (Zhang et al. 2025) counts them; its percentile interval is
reported with the share of resamples that reach.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ieegfm.config.enums import CONDITIONS
from ieegfm.errors import ConfigError
from ieegfm.shards.subset import chunk_order, fraction_budgets, subset_view, train_chunks

logger = logging.getLogger(__name__)

#: Bootstrap resamples of the label-saving CI.
N_BOOT = 2000


def check_fractions(cfg) -> list[float]:
    """The sorted fractions of ``cfg.task_fractions`` with 1.0 added (the reference), checked against the task
    shards' training chunks before any run.

    Raises
    ------
    ConfigError
        A fraction outside (0, 1] or repeated; no ``task_only`` or no pretrained trained condition to compare.
    InputError
        A fraction too small to hold one chunk of a subject (:func:`ieegfm.shards.subset.fraction_budgets`).
    """
    values = [float(v) for v in cfg.task_fractions]
    bad = [v for v in values if not (0.0 < v <= 1.0)]
    if bad or len(set(values)) != len(values):
        raise ConfigError(f"task_fractions={values}: expected distinct fractions in (0, 1]")
    if "task_only" not in cfg.conditions or not pretrained_conditions(cfg.conditions):
        raise ConfigError(
            f"task_fractions with conditions={list(cfg.conditions)}: expected task_only and at least one of "
            f"{[c for c, how in CONDITIONS.items() if how and how[0] == 'pretrained']}"
        )
    fractions = sorted(set(values) | {1.0})
    ordered = chunk_order(train_chunks(cfg.shards))
    for f in fractions:
        fraction_budgets(ordered, f, where=f"shards={cfg.shards}")
    return fractions


def pretrained_conditions(conditions) -> list[str]:
    """The trained conditions that start from the pretrained encoder."""
    return [c for c in conditions if CONDITIONS.get(c) and CONDITIONS[c][0] == "pretrained"]


def saving_from_curve(fractions, ranks, target: float) -> tuple[float | None, bool]:
    """Label saving ``1 / f*`` of one curve (see the module docstring).

    Parameters
    ----------
    fractions : sequence of float
        Increasing kept fractions.
    ranks : sequence of float
        The condition's mean relative rank at each.
    target : float
        Task-only's mean relative rank on all the task data.

    Returns
    -------
    saving : float or None
        None when the curve never reaches ``target``.
    censored : bool
        Reached at the smallest fraction already: ``saving`` is a lower bound.
    """
    f, r = np.asarray(fractions, float), np.asarray(ranks, float)
    reached = np.flatnonzero(r <= target)
    if reached.size == 0:
        return None, False
    i = int(reached[0])
    if i == 0:
        return float(1.0 / f[0]), True
    lo, hi = np.log(f[i - 1]), np.log(f[i])
    t = (target - r[i - 1]) / (r[i] - r[i - 1])
    return float(1.0 / np.exp(lo + t * (hi - lo))), False


def _subject_mean(ranks: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Unweighted mean over subjects of each subject's mean window rank; ``ranks`` (..., n_windows)."""
    return np.mean([ranks[..., g].mean(axis=-1) for g in groups], axis=0)


def _resampled_rank(m: np.ndarray, rng, idx: np.ndarray, local: list[np.ndarray]) -> float:
    """The mean relative rank of (n_seeds, n_windows) ranks ``m`` on resampled seeds and windows ``idx``."""
    seeds = rng.integers(0, m.shape[0], size=m.shape[0])
    return float(_subject_mean(m[seeds][:, idx].mean(axis=0), local))


def bootstrap_saving(
    per_window: list[np.ndarray],
    reference: np.ndarray,
    fractions,
    labels,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """Bootstrap of a condition's label saving over seeds and test windows.

    Parameters
    ----------
    per_window : list of ndarray
        Per fraction (in the order of ``fractions``), (n_seeds, n_windows) per-window relative ranks of the
        condition.
    reference : ndarray
        (n_seeds_ref, n_windows) task-only's per-window ranks on all the task data.
    fractions : sequence of float
        Increasing kept fractions (keys of ``per_window``).
    labels : sequence of str
        (n_windows,) subject of each test window (resampled within subject).
    n_boot, seed : int

    Returns
    -------
    boot : dict
        ``label_saving_ci`` (2.5 and 97.5 percentiles, failures counted as 0), ``p_reach`` (share of resamples that
        reach), ``p_censored`` (share reaching at the smallest fraction), ``n_boot``.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == s) for s in dict.fromkeys(labels.tolist())]
    savings = np.zeros(n_boot)
    reach = censored = 0
    for b in range(n_boot):
        windows = [rng.choice(g, size=g.size, replace=True) for g in groups]
        idx = np.concatenate(windows)
        sizes = np.cumsum([0, *(w.size for w in windows)])
        local = [np.arange(sizes[k], sizes[k + 1]) for k in range(len(windows))]
        target = _resampled_rank(reference, rng, idx, local)
        curve = [_resampled_rank(m, rng, idx, local) for m in per_window]
        saving, cens = saving_from_curve(fractions, curve, target)
        if saving is not None:
            savings[b], reach, censored = saving, reach + 1, censored + int(cens)
    lo, hi = np.percentile(savings, [2.5, 97.5])
    return {
        "label_saving_ci": [float(lo), float(hi)],
        "p_reach": reach / n_boot,
        "p_censored": censored / n_boot,
        "n_boot": int(n_boot),
    }


def run_fractions(cfg, fractions: list[float], full: dict[str, list[dict]], out: Path, tune) -> dict:
    """Train every trained condition on each fraction below 1 (the full-data runs are the comparison's own).

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.CompareConfig`.
    fractions : list of float
        From :func:`check_fractions`.
    full : dict
        Condition -> the comparison's runs on all the task data.
    out : Path
        The comparison folder: views under ``fractions/frac<f>/shards``, runs under ``fractions/frac<f>/<condition>``.
    tune : callable
        :func:`ieegfm.finetune.tune.tune_condition`.

    Returns
    -------
    runs : dict
        Fraction -> condition -> runs (as ``full``), and ``views``: fraction -> the view's ``subset`` record.
    """
    trained = [c for c in cfg.conditions if CONDITIONS.get(c)]
    runs: dict[float, dict[str, list[dict]]] = {1.0: {c: full[c] for c in trained}}
    views = {1.0: None}
    for f in fractions:
        if f == 1.0:
            continue
        folder = out / "fractions" / f"frac{f:g}"
        view = subset_view(cfg.shards, folder / "shards", "all", fraction=f)
        views[f] = json.loads((view / "manifest.json").read_text())["subset"]
        sub = cfg.copy()
        sub.shards = str(view)
        runs[f] = {}
        for c in trained:
            runs[f][c] = tune(sub, c, list(range(cfg.seeds)), folder / c)["runs"]
            logger.info(
                "label efficiency: %s at fraction %g: test rank %s",
                c,
                f,
                ", ".join(f"{r['test']['mean_relative_rank']:.3f}" for r in runs[f][c]),
            )
    return {"runs": runs, "views": views}


def label_efficiency(cfg, fractions: list[float], result: dict, n_boot: int = N_BOOT) -> dict:
    """``label_efficiency.json`` from :func:`run_fractions`'s runs (see the module docstring).

    Returns
    -------
    summary : dict
        ``fractions`` (requested, with 1.0), ``kept_fractions`` (the mean over subjects of the training hours kept,
        over each subject's; the x axis of the interpolation), ``train_hours`` (subject -> hours per fraction),
        ``conditions`` (name -> ``mean_relative_rank``, ``mean_relative_rank_sd`` per fraction, ``label_saving``,
        ``censored``), ``reference`` (task-only at fraction 1), ``best_condition``, ``label_saving``,
        ``label_saving_ci``, ``p_reach``, ``p_censored``, ``n_boot``, ``n_candidates``, ``method``.
    """
    runs, views = result["runs"], result["views"]
    trained = list(runs[1.0])
    first = runs[1.0][trained[0]][0]
    labels = first["per_window"]["subject_label"]
    total = None
    train_hours: dict[str, list[float]] = {}
    kept = []
    for f in fractions:
        v = views[f]
        if v is None:
            kept.append(1.0)
            continue
        total = v["available_hours_per_subject"]
        kept.append(float(np.mean([v["hours_per_subject"][s] / total[s] for s in total])))
        for s, h in v["hours_per_subject"].items():
            train_hours.setdefault(s, []).append(float(h))
    for s in train_hours:
        train_hours[s].append(float(total[s]))
    for f in fractions:
        for c in trained:
            for r in runs[f][c]:
                if r["per_window"]["key"] != first["per_window"]["key"]:
                    raise RuntimeError(f"label efficiency: {c} at fraction {f:g} scored on other test windows")
    # per fraction by position: two fractions may keep the same chunks (the same kept fraction)
    per_window = {
        c: [np.asarray([r["per_window"]["relative_rank"] for r in runs[f][c]], float) for f in fractions]
        for c in trained
    }
    curves = {}
    for c in trained:
        vals = [[r["test"]["mean_relative_rank"] for r in runs[f][c]] for f in fractions]
        curves[c] = {
            "mean_relative_rank": [float(np.mean(v)) for v in vals],
            "mean_relative_rank_sd": [float(np.std(v, ddof=1)) if len(v) > 1 else None for v in vals],
        }
    target = curves["task_only"]["mean_relative_rank"][-1]
    for c in pretrained_conditions(trained):
        curves[c]["label_saving"], curves[c]["censored"] = saving_from_curve(
            kept, curves[c]["mean_relative_rank"], target
        )
    candidates = pretrained_conditions(trained)
    best = max(candidates, key=lambda c: curves[c]["label_saving"] or 0.0)
    boot = bootstrap_saving(per_window[best], per_window["task_only"][-1], kept, labels, n_boot)
    return {
        "fractions": list(fractions),
        "kept_fractions": kept,
        "train_hours": train_hours,
        "conditions": curves,
        "reference": {"condition": "task_only", "fraction": 1.0, "mean_relative_rank": target},
        "best_condition": best,
        "label_saving": curves[best]["label_saving"],
        "censored": curves[best]["censored"],
        **boot,
        "n_seeds": int(cfg.seeds),
        "n_candidates": int(first["test"]["n_candidates"]),
        "n_test_windows": len(labels),
        "method": "label saving = 1/f*, f* the smallest kept fraction where the condition's test mean relative rank "
        "reaches task_only's on all the task data (log-linear interpolation at the first crossing); CI: "
        "bootstrap over seeds and test windows (within subject, paired), non-reaching resamples counted as 0. "
        "best_condition is the pretrained condition with the largest point estimate.",
    }


def label_efficiency_markdown(s: dict) -> list[str]:
    """Lines of ``comparison.md``: the curves and the label saving."""
    fractions = s["fractions"]
    saving = s["label_saving"]
    lo, hi = s["label_saving_ci"]
    head = "| condition | " + " | ".join(f"{f:g} ({k:.3f})" for f, k in zip(fractions, s["kept_fractions"])) + " |"
    lines = [
        "Label efficiency: test mean relative rank per fraction of the task training data (requested, and kept "
        f"on average), mean over {s['n_seeds']} seed(s), {s['n_candidates']} candidates; validation and test unchanged.",
        "",
        head,
        "|---|" + "---|" * len(fractions),
    ]
    for c, v in s["conditions"].items():
        lines.append(f"| {c} | " + " | ".join(f"{r:.3f}" for r in v["mean_relative_rank"]) + " |")
    said = "not reached" if saving is None else f"{'>= ' if s['censored'] else ''}{saving:.2f}x"
    lines += [
        "",
        f"Label saving of {s['best_condition']} (task data it needs to match task_only on all of it, "
        f"{s['reference']['mean_relative_rank']:.3f}): {said}, 95 % bootstrap CI [{lo:.2f}, {hi:.2f}] "
        f"({s['n_boot']} resamples of seeds and test windows; {100 * s['p_reach']:.0f} % reach it, non-reaching "
        "counted as 0).",
    ]
    return lines


def plot_label_efficiency(summary: dict, path: Path) -> None:
    """``label_efficiency.png``: mean relative rank against the kept fraction (log axis), one line per condition
    (± sd over seeds), task-only's full-data rank and chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = summary["kept_fractions"]
    for c, v in summary["conditions"].items():
        sd = [s or 0.0 for s in v["mean_relative_rank_sd"]]
        ax.errorbar(x, v["mean_relative_rank"], yerr=sd, marker="o", capsize=3, label=c)
    ref = summary["reference"]["mean_relative_rank"]
    ax.axhline(ref, color="k", ls="--", lw=1, label="task_only, all task data")
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the task training data")
    ax.set_ylabel(f"test mean relative rank ({summary['n_candidates']} candidates)")
    saving, ci = summary["label_saving"], summary["label_saving_ci"]
    title = f"label saving ({summary['best_condition']}): " + (
        "not reached" if saving is None else f"{'>= ' if summary['censored'] else ''}{saving:.2f}x"
    )
    ax.set_title(f"{title}  [{ci[0]:.2f}, {ci[1]:.2f}]", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
