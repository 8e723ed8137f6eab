"""``ieegfm compare``: the seed paper's per-patient comparison on the same test windows.

Rows (arXiv 2512.15830): ``zero_shot`` (the pretrained encoder on the task test split, no training),
``task_only`` (the same architecture trained on the task alone), ``finetuned_frozen`` (pretrained encoder frozen,
head trained: a linear probe) and ``finetuned_full`` (pretrained encoder and head trained). Each trained row gets its
own learning rates, chosen on the validation split from the same grid (:mod:`ieegfm.finetune.tune`), then runs
``seeds`` times; every run is scored on the same test windows, and each row is compared with ``task_only`` by a
Wilcoxon signed-rank test over test windows (per-window relative ranks averaged over seeds), pooled and per
patient. Every row carries its shuffled-pairs control, the within-block rank and its learning-rate selection.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ieegfm.checkpoint import load_checkpoint, unseen_subjects
from ieegfm.config.enums import CONDITIONS
from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.evaluate import score_split
from ieegfm.evaluation.stats import paired_wilcoxon
from ieegfm.finetune.cards import update_card
from ieegfm.finetune.label_efficiency import (
    check_fractions,
    label_efficiency,
    label_efficiency_markdown,
    plot_label_efficiency,
    run_fractions,
)
from ieegfm.finetune.tune import check_grid, tune_condition
from ieegfm.heads import LANGUAGE_MODEL_HEADS, SENTENCE_HEADS
from ieegfm.io.manifest import read_manifest

logger = logging.getLogger(__name__)

ROW_METRICS = ("mean_relative_rank", "within_block_mean_relative_rank", "top10_acc", "shuffled_mean_relative_rank")


def _summary(m: dict) -> dict:
    t = m["test"]
    return {
        "mean_relative_rank": t["mean_relative_rank"],
        "within_block_mean_relative_rank": t["within_block_mean_relative_rank"],
        "top10_acc": t["top10_accuracy"],
        "top1_acc": t["top1_accuracy"],
        "shuffled_mean_relative_rank": t["shuffled_mean_relative_rank"],
        "n_candidates": t["n_candidates"],
    }


def _subject_rows(runs: list[dict], ranks: np.ndarray, baseline, labels: np.ndarray, condition: str) -> dict:
    """Each subject's row: ``mean_relative_rank`` (mean over seeds, ``_sd``), ``n_candidates`` (the subject's
    test windows, the only candidates of its windows) and ``p_value`` against task-only on its windows."""
    out = {}
    for label in dict.fromkeys(labels.tolist()):
        idx = labels == label
        vals = [r["test"]["subjects"][label]["mean_relative_rank"] for r in runs]
        vals = [v for v in vals if v is not None]
        p = None
        if baseline is not None and condition != "task_only" and idx.sum() >= 2:
            p = paired_wilcoxon(ranks[idx], baseline[idx])["p_value"]
        out[label] = {
            "mean_relative_rank": float(np.mean(vals)) if vals else None,
            "mean_relative_rank_sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
            "n_candidates": int(idx.sum()),
            "p_value": p,
        }
    return out


def compare(cfg) -> dict:
    """Run the comparison and write ``comparison.json``, ``comparison.md``, ``comparison.png`` under ``cfg.out``.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.CompareConfig`.

    Returns
    -------
    comparison : dict
        ``rows`` (one per condition: the metrics averaged over seeds, ``p_value`` vs task-only, per-patient
        ``p_values``, ``lr`` and ``encoder_lr_scale`` chosen, ``selection`` with the grid and each point's
        validation rank, ``seeds`` with each run's metrics and folder), ``n_candidates``, ``test`` (the paired
        test).

    Raises
    ------
    ConfigError
        Unknown condition, fewer than 1 seed, a bad grid, a head without audio targets.
    InputError
        As :func:`ieegfm.finetune.run.finetune`; runs scored on different test windows.
    """
    unknown = [c for c in cfg.conditions if c not in CONDITIONS]
    if unknown:
        raise ConfigError(f"conditions={list(cfg.conditions)}: unknown {unknown}; expected some of {list(CONDITIONS)}")
    if cfg.seeds < 1:
        raise ConfigError(f"seeds={cfg.seeds}: expected at least 1")
    if cfg.head in SENTENCE_HEADS + LANGUAGE_MODEL_HEADS:
        raise ConfigError(f"head={cfg.head}: compare ranks audio windows; use a head with audio targets (linear)")
    check_grid(cfg)
    fractions = check_fractions(cfg) if cfg.task_fractions else []  # bad fractions: fail before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(cfg.shards)  # no manifest: fail before any run
    pretrained = load_checkpoint(cfg.ckpt)[1]
    new = unseen_subjects(pretrained, manifest)
    skipped = {}
    spatial = pretrained.encoder.get("input") == "spatial"  # reads a new patient zero-shot from positions
    if new and not spatial and "zero_shot" in cfg.conditions:  # no input layer for a new patient without training
        skipped["zero_shot"] = f"the checkpoint has no input layer for {', '.join(new)} (new patient(s))"
        logger.warning("compare: zero_shot skipped: %s", skipped["zero_shot"])
    results: dict[str, list[dict]] = {}
    selections: dict[str, dict] = {}
    tic = time.perf_counter()
    for condition in [c for c in cfg.conditions if c not in skipped]:
        results[condition] = []
        if CONDITIONS[condition] is None:  # zero-shot: the pretrained encoder as it is
            scored = score_split(cfg.ckpt, cfg.shards, "test", cfg.channels)
            m = {"test": scored["metrics"], "per_window": scored["per_window"]}
            (out / "zero_shot.json").write_text(json.dumps(m, indent=1))
            results[condition].append({"seed": None, "run": None, **m})
            continue
        tuned = tune_condition(cfg, condition, list(range(cfg.seeds)), out / "runs" / condition)
        results[condition], selections[condition] = tuned["runs"], tuned["selection"]
        logger.info(
            "compare: %s done (lr %g, encoder scale %s; test rank %s), %.0f s so far",
            condition,
            tuned["selection"]["chosen"]["lr"],
            tuned["selection"]["chosen"]["encoder_lr_scale"],
            ", ".join(f"{r['test']['mean_relative_rank']:.3f}" for r in tuned["runs"]),
            time.perf_counter() - tic,
        )
    comparison = summarise(results, cfg, selections)
    comparison["new_subjects"], comparison["skipped"] = new, skipped
    if fractions:  # every trained row again on nested subsets of the task's training split
        efficiency = label_efficiency(cfg, fractions, run_fractions(cfg, fractions, results, out, tune_condition))
        (out / "label_efficiency.json").write_text(json.dumps(efficiency, indent=1))
        plot_label_efficiency(efficiency, out / "label_efficiency.png")
        comparison["label_efficiency"] = efficiency
    (out / "comparison.json").write_text(json.dumps(comparison, indent=1))
    (out / "comparison.md").write_text(comparison_markdown(comparison))
    plot_comparison(results, comparison, out / "comparison.png")
    for row in comparison["rows"]:
        for s in row["seeds"]:
            if s["run"]:
                update_card(
                    Path(s["run"]),
                    {
                        "condition": row["condition"],
                        "p_value": row["p_value"],
                        "test": comparison["test"],
                        "selection": row["selection"],
                    },
                )
    return comparison


def summarise(results: dict[str, list[dict]], cfg, selections: dict[str, dict] | None = None) -> dict:
    """Rows of the comparison from the runs' metrics and each trained row's learning-rate selection (see
    :func:`compare`)."""
    selections = selections or {}
    keys = None
    per_window: dict[str, np.ndarray] = {}
    for condition, runs in results.items():
        for r in runs:
            k = r["per_window"]["key"]
            if keys is None:
                keys, subjects = k, np.asarray(r["per_window"]["subject"])
                labels = np.asarray(r["per_window"]["subject_label"])
            elif k != keys:
                raise InputError(f"compare: {condition} was scored on other test windows than the first row")
        per_window[condition] = np.mean([r["per_window"]["relative_rank"] for r in runs], axis=0)
    baseline = per_window.get("task_only")
    test = "wilcoxon signed-rank over test windows (one-sided: lower rank than task_only; ranks averaged over seeds)"
    rows = []
    for condition, runs in results.items():
        seeds = [{"seed": r["seed"], "run": r["run"], **_summary(r)} for r in runs]
        row = {"condition": condition}
        for k in ROW_METRICS:
            vals = [s[k] for s in seeds if s[k] is not None]
            row[k] = float(np.mean(vals)) if vals else None
            row[f"{k}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        row["n_candidates"] = seeds[0]["n_candidates"]
        selection = selections.get(condition)
        row["lr"] = selection["chosen"]["lr"] if selection else None
        row["encoder_lr_scale"] = selection["chosen"]["encoder_lr_scale"] if selection else None
        row["selection"] = selection
        row["p_value"], row["p_values"] = None, {}
        if baseline is not None and condition != "task_only":
            row["p_value"] = paired_wilcoxon(per_window[condition], baseline)["p_value"]
            for s in np.unique(subjects):
                idx = subjects == s
                if idx.sum() >= 2:
                    row["p_values"][str(s)] = paired_wilcoxon(per_window[condition][idx], baseline[idx])["p_value"]
        row["subjects"] = _subject_rows(runs, per_window[condition], baseline, labels, condition)
        row["seeds"] = seeds
        rows.append(row)
    return {
        "ckpt": str(cfg.ckpt),
        "shards": str(cfg.shards),
        "head": cfg.head,
        "objective": cfg.objective,
        "n_seeds": int(cfg.seeds),
        "lr_grid": [float(v) for v in cfg.lr_grid],
        "encoder_lr_scales": [float(v) for v in cfg.encoder_lr_scales],
        "select_seeds": int(min(cfg.select_seeds, cfg.seeds)),
        "n_candidates": rows[0]["n_candidates"] if rows else 0,
        "n_test_windows": len(keys or []),
        "test": test,
        "rows": rows,
    }


def comparison_markdown(c: dict) -> str:
    """``comparison.md``: one row per condition."""

    def f(v, sd=None):
        if v is None:
            return "n/a"
        return f"{v:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    def p(v):
        return "n/a" if v is None else f"{v:.2g}"

    def scale(v):
        return "frozen" if v is None else f"{v:g}"

    grid = f"lr {c['lr_grid']}, encoder scale {c['encoder_lr_scales']} (pretrained, unfrozen encoder only)"
    lines = [
        f"Test split of {c['shards']}: {c['n_candidates']} candidates (chance: mean relative rank 0.5, top-10 "
        f"{min(10, c['n_candidates']) / max(c['n_candidates'], 1):.3f}); {c['n_seeds']} seed(s) per trained row "
        f"(mean ± sd over seeds); p: {c['test']}. Learning rates chosen per row on the validation split from "
        f"{grid}, by the mean best val rank of {c['select_seeds']} seed(s).",
        "",
        "| condition | lr | encoder lr scale | mean relative rank | within-block rank | top-10 | shuffled control | "
        "p vs task-only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in c["rows"]:
        chosen = r.get("selection") is not None
        lr = f"{r['lr']:g}" if chosen else "n/a"
        enc = scale(r["encoder_lr_scale"]) if chosen else "n/a"
        lines.append(
            f"| {r['condition']} | {lr} | {enc} | "
            f"{f(r['mean_relative_rank'], r['mean_relative_rank_sd'])} | "
            f"{f(r['within_block_mean_relative_rank'], r['within_block_mean_relative_rank_sd'])} | "
            f"{f(r['top10_acc'], r['top10_acc_sd'])} | {f(r['shuffled_mean_relative_rank'])} | {p(r['p_value'])} |"
        )
    labels = list(dict.fromkeys(label for r in c["rows"] for label in r.get("subjects", {})))
    if len(labels) > 1:  # candidates come from the window's own subject; one line per subject and condition
        lines += [
            "",
            "Per subject (each window ranked among its own subject's test windows):",
            "",
            "| subject | condition | candidates | mean relative rank | p vs task-only |",
            "|---|---|---|---|---|",
        ]
        for label in labels:
            for r in c["rows"]:
                s = r["subjects"].get(label)
                if s is not None:
                    lines.append(
                        f"| {label} | {r['condition']} | {s['n_candidates']} | "
                        f"{f(s['mean_relative_rank'], s['mean_relative_rank_sd'])} | {p(s['p_value'])} |"
                    )
    if c.get("new_subjects"):
        lines += ["", f"New patient(s), never seen in pretraining: {', '.join(c['new_subjects'])} (a new input layer "
                  "each, trained on the task data; with the encoder frozen, only that layer and the head train)."]  # fmt: skip
    for condition, why in (c.get("skipped") or {}).items():
        lines += ["", f"{condition} not run: {why}."]
    selected = [r for r in c["rows"] if r.get("selection")]
    if selected:
        lines += [
            "",
            "Validation mean relative rank per grid point (the test split plays no part; * chosen):",
            "",
            "| condition | lr | encoder lr scale | val mean relative rank |",
            "|---|---|---|---|",
        ]
        for r in selected:
            for g in r["selection"]["grid"]:
                lines.append(
                    f"| {r['condition']} | {g['lr']:g} | {scale(g['encoder_lr_scale'])} | "
                    f"{f(g['val_mean_relative_rank'])}{' *' if g['chosen'] else ''} |"
                )
        edges = [f"{r['condition']} ({r['selection']['lr_at_grid_edge']})" for r in selected
                 if r["selection"].get("lr_at_grid_edge")]  # fmt: skip
        if edges:
            lines += ["", "Chosen lr at an end of lr_grid (the best may lie beyond it): " + ", ".join(edges) + "."]
    if c.get("label_efficiency"):
        lines += ["", *label_efficiency_markdown(c["label_efficiency"])]
    return "\n".join(lines) + "\n"


def plot_comparison(results: dict[str, list[dict]], c: dict, path: Path) -> None:
    """PNG: per-window relative-rank distributions per condition (violins), seed means (dots), chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.4), dpi=120)
    data = [np.mean([r["per_window"]["relative_rank"] for r in results[n]], axis=0) for n in names]
    parts = ax.violinplot(data, showmeans=False, showextrema=False)
    for body in parts["bodies"]:
        body.set_facecolor("#3465a4")
        body.set_alpha(0.35)
    for i, n in enumerate(names, start=1):
        means = [r["test"]["mean_relative_rank"] for r in results[n]]
        shuffled = [r["test"]["shuffled_mean_relative_rank"] for r in results[n]]
        ax.scatter(np.full(len(means), i) + np.linspace(-0.08, 0.08, len(means)), means, color="k", s=14, zorder=3)
        ax.scatter([i + 0.22], [np.mean(shuffled)], marker="x", color="#cc0000", s=22, zorder=3)
    ax.axhline(0.5, color="k", ls="--", lw=1)
    ax.set_xticks(range(1, len(names) + 1), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("relative rank of the true window\n(0 = best, 0.5 = chance)", fontsize=8)
    ax.set_ylim(0, 1)
    p = {r["condition"]: r["p_value"] for r in c["rows"]}
    for i, n in enumerate(names, start=1):
        if p.get(n) is not None:
            ax.text(i, 0.97, f"p={p[n]:.1g}", ha="center", va="top", fontsize=7)
    ax.set_title(
        f"{c['n_candidates']} candidates; dots: seed means; x: shuffled control; violins: per-window ranks",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
