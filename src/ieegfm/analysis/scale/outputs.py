"""What a scaling sweep writes: ``points.csv``, ``fit.json``, ``scale.md`` and one PNG per condition (per
condition and number of patients on the patients axis, plus one over patients).

Rows scored per point (all on the test split, every point on the same windows): ``pretrain_test`` (the pretraining
checkpoint on the pretraining shards' own test windows), ``zero_shot`` (the same checkpoint on the task shards),
the finetuned rows, and per (condition, seed) the ``task_only`` baseline. Every row carries its shuffled-pairs
control; relative rank 0.5 is chance.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from ieegfm.analysis.fit import bootstrap_log_linear
from ieegfm.errors import InputError
from ieegfm.evaluation.stats import paired_wilcoxon
from ieegfm.io.manifest import read_manifest

logger = logging.getLogger(__name__)

RANK = "mean_relative_rank"


def _load_cards(points) -> list[dict]:
    cards = []
    for p in points:
        path = p.folder / "card.json"
        if path.is_file():
            cards.append(json.loads(path.read_text()))
    return cards


def _hours_of(card: dict, subject: str | None = None) -> float:
    """The hours axis of a point: a subject's hours; else the mean per patient (``hours_per=patient``) or the
    total over the point's patients (``hours_per=total``)."""
    per = card["hours_per_subject"]
    if subject is not None:
        return float(per[subject])
    values = list(per.values())
    return float(np.sum(values) if card.get("hours_per") == "total" else np.mean(values))


def _group(card: dict) -> str:
    """The fit over hours a point belongs to: its condition (and number of patients, on the patients axis)."""
    return card.get("group") or card["condition"]


def _check_windows(cards: list[dict], rows: list[str]) -> None:
    """Every point scored on the same task test windows (and, within a group, pretraining test windows: another
    set of patients has other ones)."""
    for row in ["pretrain_test", *rows]:
        keys: dict = {}
        for c in cards:
            if row not in c["rows"]:
                continue
            k = c["rows"][row]["per_window"]["key"]
            at = _group(c) if row == "pretrain_test" else None
            if at not in keys:
                keys[at] = (k, c)
                continue
            first = keys[at][1]
            if k != keys[at][0]:
                raise InputError(
                    f"scale: point {c['condition']}/{c['hours']}/seed{c['seed']} was scored on other {row} test "
                    f"windows than {first['condition']}/{first['hours']}/seed{first['seed']}; expected one task split"
                )


def points_table(cards: list[dict], rows: list[str]) -> list[dict]:
    """One ``points.csv`` row per point."""
    task_only = {(c["condition"], c["seed"]): c["rows"]["task_only"]["test"] for c in cards if "task_only" in c["rows"]}
    table = []
    for c in sorted(cards, key=lambda c: (c["condition"], len(c.get("patients") or ()), _hours_of(c), c["seed"])):
        per = list(c["hours_per_subject"].values())
        r = {
            "condition": c["condition"],
            "n_patients": len(per),
            "patients": "+".join(c["hours_per_subject"]),
            "hours_per": c.get("hours_per", "patient"),
            "hours": c["hours"],
            "hours_per_patient": round(float(np.mean(per)), 4),
            "total_hours": round(float(np.sum(per)), 4),
            "seed": c["seed"],
            "daytime_only": c.get("daytime_only", False),
            "compute_policy": c["compute"]["policy"],
            "max_steps": c["compute"]["max_steps"],
            "steps_done": c["compute"].get("steps_done"),
            "train_windows": c["compute"]["train_windows"],
            "epochs_done": round(c["compute"]["epochs_done"], 3),
        }
        for row in ["pretrain_test", "zero_shot", *rows]:
            t = c["rows"][row]["test"]
            r[f"{row}_{RANK}"] = round(t[RANK], 5)
            r[f"{row}_shuffled_{RANK}"] = round(t["shuffled_mean_relative_rank"], 5)
            r[f"{row}_within_block_{RANK}"] = round(t["within_block_mean_relative_rank"], 5)
            r[f"{row}_top10_accuracy"] = round(t["top10_accuracy"], 5)
        t = task_only.get((c["condition"], c["seed"]))
        r[f"task_only_{RANK}"] = round(t[RANK], 5) if t else None
        r[f"task_only_shuffled_{RANK}"] = round(t["shuffled_mean_relative_rank"], 5) if t else None
        r["n_candidates"] = c["rows"]["zero_shot"]["test"]["n_candidates"]
        r["pretrain_n_candidates"] = c["rows"]["pretrain_test"]["test"]["n_candidates"]
        r["wall_s"] = round(c["wall_s"], 1)
        table.append(r)
    return table


def _subject_names(task_shards: str) -> dict:
    """Subject index (as in per-window records) -> label, from the task shards' manifest."""
    return {v.index: s for s, v in read_manifest(task_shards).subjects.items()}


def _fit(cards: list[dict], row: str, n_boot: int, subject: str | None = None) -> dict | None:
    by_hours: dict[str, list[dict]] = {}
    for c in cards:
        by_hours.setdefault(str(c["hours"]), []).append(c)
    if len(by_hours) < 2:
        return None

    def ranks(c: dict) -> np.ndarray:  # the per-window metric of a point, restricted to the subject
        pw = c["rows"][row]["per_window"]
        r = np.asarray(pw["relative_rank"])
        return r if subject is None else r[np.asarray(pw["subject"]) == subject]

    groups = sorted(by_hours.values(), key=lambda g: _hours_of(g[0]))
    values = [np.array([ranks(c) for c in g]) for g in groups]
    if values[0].shape[1] == 0:
        return None
    hours = [float(np.mean([_hours_of(c, subject) for c in g])) for g in groups]
    fit = bootstrap_log_linear(hours, values, n_boot=n_boot)
    fit["raw"] = [
        {"hours": _hours_of(c, subject), "seed": c["seed"], "value": float(np.mean(ranks(c)))}
        for g in groups
        for c in g
    ]
    fit["n_windows"] = int(values[0].shape[1])
    return fit


def fits(cfg, cards: list[dict]) -> dict:
    """``fit.json``: per condition, the fit of ``cfg.fit_metric`` (pooled and per patient) and of the other rows."""
    rows = list(cfg.finetune.rows)
    out = {}
    for cond in sorted({_group(c) for c in cards}):
        own = [c for c in cards if _group(c) == cond]
        main = _fit(own, cfg.fit_metric, cfg.n_boot)
        subjects = sorted(set(own[0]["rows"][cfg.fit_metric]["per_window"]["subject"]))
        task_only = [c["rows"]["task_only"]["test"][RANK] for c in own if "task_only" in c["rows"]]
        names = _subject_names(own[0]["task_shards"])
        out[cond] = {
            "metric": f"{cfg.fit_metric} {RANK} (test split of the task shards; lower is better, chance 0.5)",
            **(main or {"slope": None, "slope_ci": None, "intercept": None, "note": "fewer than 2 budgets"}),
            "fit": "metric = intercept + slope * log10(hours per patient); slope per decade of hours, bootstrap "
            "over seeds (per budget) and test windows (paired across budgets)",
            "per_patient": {names.get(s, str(s)): _fit(own, cfg.fit_metric, cfg.n_boot, s) for s in subjects}
            if len(subjects) > 1
            else {},
            "other_metrics": {
                r: _fit(own, r, cfg.n_boot) for r in ["pretrain_test", "zero_shot", *rows] if r != cfg.fit_metric
            },
            "task_only": {
                RANK: float(np.mean(task_only)) if task_only else None,
                "sd": float(np.std(task_only, ddof=1)) if len(task_only) > 1 else None,
                "n_seeds": len(task_only),
            },
            "chance": 0.5,
            "n_candidates": own[0]["rows"][cfg.fit_metric]["test"]["n_candidates"],
            "compute": {"policy": own[0]["compute"]["policy"], "epochs": own[0]["compute"]["epochs"]},
            "n_points": len(own),
        }
    return out


def paired_tests(cfg, cards: list[dict]) -> list[dict]:
    """Each condition (on the patients axis: each condition and number of patients) vs the first, at equal hours:
    Wilcoxon signed-rank over test windows (ranks averaged over seeds), two-sided, pooled and per patient."""
    conds = list(dict.fromkeys(_group(c) for c in cards))
    tests = []
    for other in conds[1:]:
        for h in sorted({str(c["hours"]) for c in cards}):
            a = [c for c in cards if _group(c) == other and str(c["hours"]) == h]
            b = [c for c in cards if _group(c) == conds[0] and str(c["hours"]) == h]
            if not a or not b:
                continue
            ra = np.mean([c["rows"][cfg.fit_metric]["per_window"]["relative_rank"] for c in a], axis=0)
            rb = np.mean([c["rows"][cfg.fit_metric]["per_window"]["relative_rank"] for c in b], axis=0)
            subj = np.asarray(a[0]["rows"][cfg.fit_metric]["per_window"]["subject"])
            t = {"condition": other, "baseline": conds[0], "hours": h, "metric": cfg.fit_metric}
            t["mean_difference"] = float(np.mean(ra - rb))
            t["p_value"] = paired_wilcoxon(ra, rb, alternative="two-sided")["p_value"]
            names = _subject_names(a[0]["task_shards"])
            t["p_values"] = {
                names.get(s, str(s)): paired_wilcoxon(ra[subj == s], rb[subj == s], alternative="two-sided")["p_value"]
                for s in np.unique(subj)
                if (subj == s).sum() >= 2
            }
            t["test"] = "wilcoxon signed-rank over test windows, two-sided, ranks averaged over seeds"
            tests.append(t)
    return tests


def collect(cfg, points) -> dict:
    """Gather the finished points' cards and write ``points.csv``, ``fit.json``, ``scale.md`` and the PNGs.

    Raises
    ------
    InputError
        No finished point; points scored on different test windows.
    """
    out = Path(cfg.out)
    cards = _load_cards(points)
    if not cards:
        raise InputError(f"out={out}: no finished point (points/*/*/*/card.json); run the sweep first")
    if len(cards) < len(points):
        logger.warning("scale: %d of %d points finished; fitting those", len(cards), len(points))
    rows = list(cfg.finetune.rows)
    _check_windows(cards, ["zero_shot", *rows])
    table = points_table(cards, rows)
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    fit = fits(cfg, cards)
    tests = paired_tests(cfg, cards)
    over_patients = patient_fits(cfg, cards)
    extra = {"_paired_tests": tests, **({"_patients": over_patients} if over_patients else {})}
    (out / "fit.json").write_text(json.dumps({**fit, **extra}, indent=1))
    (out / "scale.md").write_text(scale_markdown(cfg, table, fit, tests, over_patients))
    for cond in fit:
        own = [c for c in cards if _group(c) == cond]
        plot_condition(cfg, own, fit[cond], out / f"scale_{cond.replace('/', '_')}.png")
    for cond, f in over_patients.items():
        plot_patients(cfg, [c for c in cards if c["condition"] == cond], f, out / f"scale_patients_{cond}.png")
    for cond, f in fit.items():
        if f.get("slope") is not None:
            logger.info(
                "scale %s: %s = %.3f %+.4f * log10(hours), slope 95%% CI [%.4f, %.4f] (p %.2g, %d points)",
                cond,
                cfg.fit_metric,
                f["intercept"],
                f["slope"],
                *f["slope_ci"],
                f["slope_p_value"],
                f["n_points"],
            )
    for cond, by_hours in over_patients.items():
        for h, f in by_hours.items():
            if f.get("slope") is not None:
                logger.info(
                    "scale %s at %s (hours per %s): %s slope %+.4f per decade of patients, 95%% CI [%.4f, %.4f]",
                    cond,
                    h,
                    cfg.hours_per,
                    cfg.fit_metric,
                    f["slope"],
                    *f["slope_ci"],
                )
    return {**fit, **extra}


def patient_fits(cfg, cards: list[dict]) -> dict:
    """``fit.json["_patients"]``: per condition and hours budget, ``metric = a + b log10(patients)`` over the
    nested sets of pretraining patients (bootstrap over seeds and paired test windows, as the hours fit); empty
    without a patients axis or with fewer than two sets."""
    out: dict = {}
    for cond in sorted({c["condition"] for c in cards if c.get("patients")}):
        own = [c for c in cards if c["condition"] == cond and c.get("patients")]
        for h in sorted({str(c["hours"]) for c in own}, key=lambda v: (v == "all", float(v) if v != "all" else 0)):
            at = [c for c in own if str(c["hours"]) == h]
            by_n: dict[int, list[dict]] = {}
            for c in at:
                by_n.setdefault(len(c["patients"]), []).append(c)
            if len(by_n) < 2:
                continue
            ns = sorted(by_n)
            values = [np.array([c["rows"][cfg.fit_metric]["per_window"]["relative_rank"] for c in by_n[n]]) for n in ns]
            f = bootstrap_log_linear([float(n) for n in ns], values, n_boot=cfg.n_boot)
            f["x"] = "number of pretraining patients (slope per decade of patients)"
            f["n_patients"] = ns
            f["patients"] = {str(n): by_n[n][0]["patients"] for n in ns}
            f["hours_per"] = cfg.hours_per
            f["hours_per_patient"] = {
                str(n): float(np.mean(list(by_n[n][0]["hours_per_subject"].values()))) for n in ns
            }
            f["raw"] = [
                {"n_patients": n, "seed": c["seed"], "value": c["rows"][cfg.fit_metric]["test"][RANK]}
                for n in ns
                for c in by_n[n]
            ]
            out.setdefault(cond, {})[h] = f
    return out


def scale_markdown(cfg, table: list[dict], fit: dict, tests: list[dict], over_patients: dict | None = None) -> str:
    """``scale.md``: the fit per condition, then every point's figures and the paired tests."""
    lines = [
        f"Scaling over pretraining hours: {cfg.fit_metric} test mean relative rank on {cfg.task_shards} "
        f"({table[0]['n_candidates']} candidates, chance 0.5, lower is better); compute per point: {cfg.compute}"
        + (
            f" ({cfg.epochs:g} epochs over the subset)"
            if cfg.compute == "epochs"
            else f" ({cfg.trainer.max_steps} steps)"
        )
        + f"; subsets nested in {cfg.order} order.",
        "",
        "| condition | slope per decade of hours [95% CI] | p (slope 0) | intercept (1 h) | task-only | points |",
        "|---|---|---|---|---|---|",
    ]
    for cond, f in fit.items():
        if f.get("slope") is None:
            lines.append(f"| {cond} | n/a (fewer than 2 budgets) | | | | {f['n_points']} |")
            continue
        t = f["task_only"]
        lines.append(
            f"| {cond} | {f['slope']:+.4f} [{f['slope_ci'][0]:+.4f}, {f['slope_ci'][1]:+.4f}] | "
            f"{f['slope_p_value']:.2g} | {f['intercept']:.3f} | "
            + (f"{t[RANK]:.3f}" if t[RANK] is not None else "n/a")
            + f" | {f['n_points']} |"
        )
    rows = [k[: -len(RANK) - 1] for k in table[0] if k.endswith(RANK) and "shuffled" not in k and "within" not in k]
    lines += [
        "",
        "| condition | patients | hours | h/patient | seed | steps | "
        + " | ".join(f"{r} (shuffled)" for r in rows)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(rows),
    ]
    for r in table:
        cells = []
        for name in rows:
            v, s = r.get(f"{name}_{RANK}"), r.get(f"{name}_shuffled_{RANK}")
            cells.append("n/a" if v is None else f"{v:.3f} ({s:.3f})")
        lines.append(
            f"| {r['condition']} | {r['n_patients']} | {r['hours']} | {r['hours_per_patient']:.2f} | {r['seed']} | "
            f"{r['steps_done'] if r['steps_done'] is not None else r['max_steps']} | " + " | ".join(cells) + " |"
        )
    if over_patients:
        lines += [
            "",
            f"Over the number of pretraining patients (nested sets; hours per {cfg.hours_per}): "
            f"{cfg.fit_metric} = intercept + slope * log10(patients).",
            "",
            "| condition | hours | patients | ranks | slope per decade of patients [95% CI] | p (slope 0) |",
            "|---|---|---|---|---|---|",
        ]
        for cond, by_hours in over_patients.items():
            for h, f in by_hours.items():
                ranks = " / ".join(f"{m:.3f}" for m in f["points"]["mean"])
                lines.append(
                    f"| {cond} | {h} | {', '.join(map(str, f['n_patients']))} | {ranks} | {f['slope']:+.4f} "
                    f"[{f['slope_ci'][0]:+.4f}, {f['slope_ci'][1]:+.4f}] | {f['slope_p_value']:.2g} |"
                )
    if tests:
        lines += ["", "Paired tests at equal hours (" + tests[0]["test"] + "):", ""]
        lines += ["| condition | vs | hours | mean difference | p |", "|---|---|---|---|---|"]
        for t in tests:
            lines.append(
                f"| {t['condition']} | {t['baseline']} | {t['hours']} | {t['mean_difference']:+.4f} | "
                f"{t['p_value']:.2g} |"
            )
    return "\n".join(lines) + "\n"


def plot_condition(cfg, cards: list[dict], fit: dict, path: Path) -> None:
    """PNG: the points (one per seed), the fitted law with its bootstrap band, chance, the task-only band and the
    zero-shot points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    h = np.array([_hours_of(c) for c in cards])
    y = np.array([c["rows"][cfg.fit_metric]["test"][RANK] for c in cards])
    z = np.array([c["rows"]["zero_shot"]["test"][RANK] for c in cards])
    ax.scatter(h, y, color="#3465a4", s=18, zorder=3, label=f"{cfg.fit_metric} (per seed)")
    ax.scatter(h, z, color="#888888", marker="^", s=14, zorder=2, label="zero-shot")
    if fit.get("slope") is not None:
        band = fit["band"]
        ax.fill_between(band["hours"], band["lo"], band["hi"], color="#3465a4", alpha=0.2, lw=0)
        grid = np.asarray(band["hours"])
        ax.plot(
            grid,
            fit["intercept"] + fit["slope"] * np.log10(grid),
            color="#3465a4",
            lw=1.5,
            label=f"fit: slope {fit['slope']:+.3f} [{fit['slope_ci'][0]:+.3f}, {fit['slope_ci'][1]:+.3f}]",
        )
    t = fit["task_only"]
    if t[RANK] is not None:
        sd = t["sd"] or 0.0
        ax.axhspan(t[RANK] - sd, t[RANK] + sd, color="#cc7a00", alpha=0.2, lw=0)
        ax.axhline(t[RANK], color="#cc7a00", lw=1, label="task only (mean ± sd)")
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ticks = sorted(set(np.round(h, 3)))
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.minorticks_off()
    ax.set_ylim(0, 0.55)
    ax.set_xlabel(
        "total pretraining hours" if cards[0].get("hours_per") == "total" else "pretraining hours per patient"
    )
    ax.set_ylabel("test mean relative rank\n(lower is better)")
    ax.set_title(f"{_group(cards[0])}: {fit['n_candidates']} candidates", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_patients(cfg, cards: list[dict], by_hours: dict, path: Path) -> None:
    """PNG: the fit metric over the number of pretraining patients, one line (with its bootstrap band) per hours
    budget, the task-only level and chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for k, (h, f) in enumerate(by_hours.items()):
        color = plt.get_cmap("viridis")(k / max(len(by_hours) - 1, 1) * 0.85)
        raw = f["raw"]
        ax.scatter([r["n_patients"] for r in raw], [r["value"] for r in raw], color=color, s=16, zorder=3)
        band = f["band"]
        ax.fill_between(band["hours"], band["lo"], band["hi"], color=color, alpha=0.15, lw=0)
        grid = np.asarray(band["hours"])
        label = f"{h} h per {cfg.hours_per}: slope {f['slope']:+.3f} [{f['slope_ci'][0]:+.3f}, {f['slope_ci'][1]:+.3f}]"
        ax.plot(grid, f["intercept"] + f["slope"] * np.log10(grid), color=color, lw=1.4, label=label)
    task_only = [c["rows"]["task_only"]["test"][RANK] for c in cards if "task_only" in c["rows"]]
    if task_only:
        ax.axhline(float(np.mean(task_only)), color="#cc7a00", lw=1, label="task only")
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ns = sorted({n for f in by_hours.values() for n in f["n_patients"]})
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_ylim(0, 0.55)
    ax.set_xlabel("pretraining patients (nested)")
    ax.set_ylabel(f"{cfg.fit_metric}\ntest mean relative rank (lower is better)")
    n_cand = cards[0]["rows"][cfg.fit_metric]["test"]["n_candidates"]
    ax.set_title(f"{cards[0]['condition']}: {n_cand} candidates", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
