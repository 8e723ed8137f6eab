"""``ieegfm compare``: the seed paper's per-patient comparison on the same test windows.

Rows (arXiv 2512.15830): ``zero_shot`` (the pretrained encoder on the task test split, no training),
``task_only`` (the same architecture trained on the task alone), ``finetuned_frozen`` (pretrained encoder frozen,
head trained: a linear probe) and ``finetuned_full`` (pretrained encoder and head trained, the encoder at a lower
learning rate). Each trained row runs ``seeds`` times; every run is scored on the same test windows, and each row is
compared with ``task_only`` by a Wilcoxon signed-rank test over test windows (per-window relative ranks averaged
over seeds), pooled and per patient. Every row carries its shuffled-pairs control and the within-block rank.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ieegfm.config import FinetuneConfig
from ieegfm.data import read_manifest
from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.evaluate import score_split
from ieegfm.evaluation.stats import paired_wilcoxon
from ieegfm.finetune.cards import update_card
from ieegfm.finetune.run import finetune

logger = logging.getLogger(__name__)

#: condition -> (init, freeze) of its finetuning runs; None: not trained.
CONDITIONS: dict[str, tuple[str, str] | None] = {
    "zero_shot": None,
    "task_only": ("scratch", "none"),
    "finetuned_frozen": ("pretrained", "encoder"),
    "finetuned_full": ("pretrained", "none"),
}
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


def run_config(cfg, condition: str, seed: int, out: Path):
    """The ``ieegfm finetune`` config of one trained row and seed (the comparison's shared keys)."""
    init, freeze = CONDITIONS[condition]
    shared = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in ("out", "seeds", "conditions")}
    run = OmegaConf.merge(OmegaConf.structured(FinetuneConfig), shared)
    run.out, run.init, run.freeze, run.seed = str(out), init, freeze, seed
    return run


def finished_run(run: Path, run_cfg) -> bool:
    """A finished run of exactly this config (a rerun of the comparison reuses it)."""
    done = run / "metrics.json"
    if not done.is_file() or not (run / "config.yaml").is_file():
        return False
    return OmegaConf.to_container(OmegaConf.load(run / "config.yaml")) == OmegaConf.to_container(run_cfg, resolve=True)


def run_row(cfg, condition: str, seed: int, run: Path) -> dict:
    """Finetune one trained row and seed into ``run`` (reused when it finished with the same config).

    Returns
    -------
    metrics : dict
        The run's ``metrics.json`` (``test``: summary metrics, ``per_window``: per-window ranks).
    """
    run_cfg = run_config(cfg, condition, seed, run)
    if finished_run(run, run_cfg):
        logger.info("%s seed %d already done (%s), reused", condition, seed, run)
    else:
        finetune(run_cfg)
    return json.loads((run / "metrics.json").read_text())


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
        ``p_values``, ``seeds`` with each run's metrics and folder), ``n_candidates``, ``test`` (the paired test).

    Raises
    ------
    ConfigError
        Unknown condition, fewer than 1 seed.
    InputError
        As :func:`ieegfm.finetune.run.finetune`; runs scored on different test windows.
    """
    unknown = [c for c in cfg.conditions if c not in CONDITIONS]
    if unknown:
        raise ConfigError(f"conditions={list(cfg.conditions)}: unknown {unknown}; expected some of {list(CONDITIONS)}")
    if cfg.seeds < 1:
        raise ConfigError(f"seeds={cfg.seeds}: expected at least 1")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    read_manifest(cfg.shards)  # no manifest: fail before any run
    results: dict[str, list[dict]] = {}
    total = sum(cfg.seeds if CONDITIONS[c] else 1 for c in cfg.conditions)
    done, tic = 0, time.perf_counter()
    for condition in cfg.conditions:
        results[condition] = []
        if CONDITIONS[condition] is None:  # zero-shot: the pretrained encoder as it is
            scored = score_split(cfg.ckpt, cfg.shards, "test", cfg.channels)
            m = {"test": scored["metrics"], "per_window": scored["per_window"]}
            (out / "zero_shot.json").write_text(json.dumps(m, indent=1))
            results[condition].append({"seed": None, "run": None, **m})
            done += 1
            continue
        for seed in range(cfg.seeds):
            run = out / "runs" / condition / f"seed{seed}"
            m = run_row(cfg, condition, seed, run)
            results[condition].append({"seed": seed, "run": str(run), **m})
            done += 1
            logger.info(
                "compare: %d/%d runs done (%s seed %d: test rank %.3f), %.0f s per run",
                done,
                total,
                condition,
                seed,
                m["test"]["mean_relative_rank"],
                (time.perf_counter() - tic) / done,
            )
    comparison = summarise(results, cfg)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=1))
    (out / "comparison.md").write_text(comparison_markdown(comparison))
    plot_comparison(results, comparison, out / "comparison.png")
    for row in comparison["rows"]:
        for s in row["seeds"]:
            if s["run"]:
                update_card(
                    Path(s["run"]),
                    {"condition": row["condition"], "p_value": row["p_value"], "test": comparison["test"]},
                )
    return comparison


def summarise(results: dict[str, list[dict]], cfg) -> dict:
    """Rows of the comparison from the runs' metrics (see :func:`compare`)."""
    keys = None
    per_window: dict[str, np.ndarray] = {}
    for condition, runs in results.items():
        for r in runs:
            k = r["per_window"]["key"]
            if keys is None:
                keys, subjects = k, np.asarray(r["per_window"]["subject"])
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
        row["p_value"], row["p_values"] = None, {}
        if baseline is not None and condition != "task_only":
            row["p_value"] = paired_wilcoxon(per_window[condition], baseline)["p_value"]
            for s in np.unique(subjects):
                idx = subjects == s
                if idx.sum() >= 2:
                    row["p_values"][str(s)] = paired_wilcoxon(per_window[condition][idx], baseline[idx])["p_value"]
        row["seeds"] = seeds
        rows.append(row)
    return {
        "ckpt": str(cfg.ckpt),
        "shards": str(cfg.shards),
        "head": cfg.head,
        "objective": cfg.objective,
        "n_seeds": int(cfg.seeds),
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

    lines = [
        f"Test split of {c['shards']}: {c['n_candidates']} candidates (chance: mean relative rank 0.5, top-10 "
        f"{min(10, c['n_candidates']) / max(c['n_candidates'], 1):.3f}); {c['n_seeds']} seed(s) per trained row "
        f"(mean ± sd over seeds); p: {c['test']}.",
        "",
        "| condition | mean relative rank | within-block rank | top-10 | shuffled control | p vs task-only |",
        "|---|---|---|---|---|---|",
    ]
    for r in c["rows"]:
        lines.append(
            f"| {r['condition']} | {f(r['mean_relative_rank'], r['mean_relative_rank_sd'])} | "
            f"{f(r['within_block_mean_relative_rank'], r['within_block_mean_relative_rank_sd'])} | "
            f"{f(r['top10_acc'], r['top10_acc_sd'])} | {f(r['shuffled_mean_relative_rank'])} | {p(r['p_value'])} |"
        )
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
