"""Leave-one-patient-out transfer on the simulator: pretrain on two patients, compare on the third's task session.

Usage: ``python tools/cohort_study.py --out runs/cohort_study [--hours 0.5] [--task-minutes 16] [--steps 300]
[--seeds 3] [--tiny]``

Three simulated patients (``ieegfm simulate subjects=3``: implants of 4, 3 and 5 shafts, the same kinds of
responses, each its own random mixing), one pack each; the encoder is pretrained on sim01 + sim02 and compared on
sim03's task session, which it never saw (a new input layer): ``task_only`` vs ``finetuned_frozen`` and
``finetuned_full``, each with its learning rate chosen on validation, a one-sided Wilcoxon test over test windows
against task-only. The control: a fourth patient whose recordings hold no audio-driven response at all
(``snr=0 hg_snr=0 semantic_snr=0``): every condition must sit at chance there. Writes ``cohort_study.json`` and
prints a Markdown table; the steps are the public commands a user runs (``simulate``, ``pack``, ``pretrain``,
``compare``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ieegfm.__main__ import main as ieegfm

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
TINY = ["model.hidden=32", "model.projected_chans=16", "model.depth=2"]


def run(*args: str) -> None:
    """One ieegfm command; a failure stops the study."""
    if ieegfm(list(args)) != 0:
        raise SystemExit(f"ieegfm {' '.join(args)} failed")


def build(root: Path, hours: float, task_minutes: float, shared: bool = False, jitter: float | None = None) -> dict:
    """Simulate and pack: the three patients' ambient packs, sim03's task pack, the no-response patient's task
    (``shared``: responses follow a map of positions shared by every patient, ``simulate shared_responses=true``;
    ``jitter``: shafts of one name aim at the same target in every patient, ``simulate target_jitter_mm=``)."""
    sim = ["days=1", "block_minutes=5", f"task_minutes={task_minutes}", "task_blocks=8", f"shared_responses={shared}"]
    sim += [f"target_jitter_mm={'null' if jitter is None else jitter}"]
    if not (root / "sim" / "recordings.tsv").is_file():
        run("simulate", f"out={root / 'sim'}", "subjects=3", f"hours={hours}", "seed=0", *sim)
    if not (root / "null" / "recordings_task.tsv").is_file():
        null = ["subject=sim09", "seed=9", "snr=0", "hg_snr=0", "semantic_snr=0", f"hours={hours / 4}"]
        run("simulate", f"out={root / 'null'}", *null, *sim)
    split = ["split.val=0.25", "split.test=0.25"]
    packs = {}
    for s in ("sim01", "sim02"):
        packs[s] = root / "packs" / s
        if not (packs[s] / "manifest.json").is_file():
            run("pack", f"recordings={root / 'sim' / 'recordings.tsv'}", f"subjects=[{s}]", f"out={packs[s]}")
    task = {"sim03": root / "task" / "sim03", "sim09": root / "task" / "sim09"}
    if not (task["sim03"] / "manifest.json").is_file():
        table = root / "sim" / "recordings_task.tsv"
        run("pack", f"recordings={table}", "subjects=[sim03]", f"out={task['sim03']}", *split)
    if not (task["sim09"] / "manifest.json").is_file():
        run("pack", f"recordings={root / 'null' / 'recordings_task.tsv'}", f"out={task['sim09']}", *split)
    return {"packs": packs, "task": task}


def study(
    root: Path,
    hours: float,
    task_minutes: float,
    steps: int,
    seeds: int,
    finetune_steps: int,
    tiny: bool,
    shared: bool = False,
    spatial: bool = False,
    jitter: float | None = None,
):
    """Build, pretrain on sim01 + sim02, compare on sim03 and on the no-response patient; return the summary.
    ``spatial``: the encoder reads electrode positions (``model.input=spatial``), and ``zero_shot`` is a row."""
    data = build(root, hours, task_minutes, shared, jitter)
    model = (TINY if tiny else []) + (["model.input=spatial"] if spatial else [])
    pre = root / "pretrain"
    ckpt = pre / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        shards = f"shards=[{data['packs']['sim01']},{data['packs']['sim02']}]"
        run("pretrain", shards, f"out={pre}", f"trainer.max_steps={steps}", "data.batch_size=32", "optim.lr=2e-3",
            f"trainer.val_check_interval={max(steps // 2, 1)}", *model, *FAST)  # fmt: skip
    ft = [f"seeds={seeds}", "lr_grid=[1e-3,3e-3]", "encoder_lr_scales=[0.1]", f"trainer.max_steps={finetune_steps}"]
    ft += ["data.batch_size=32", "trainer.val_check_interval=10", *FAST]
    summary = {"pretrained_on": ["sim01", "sim02"], "pretrain_steps": steps, "finetune_steps": finetune_steps,
               "shared_responses": shared, "target_jitter_mm": jitter, "input": "spatial" if spatial else "subject_layers"}  # fmt: skip
    zero = "zero_shot," if spatial else ""
    for target, conditions in (("sim03", f"{zero}task_only,finetuned_frozen,finetuned_full"),
                               ("sim09", f"{zero}task_only,finetuned_frozen")):  # fmt: skip
        out = root / f"compare-{target}"
        if not (out / "comparison.json").is_file():
            run("compare", f"ckpt={ckpt}", f"shards={data['task'][target]}", f"out={out}", f"conditions=[{conditions}]",
                *ft)  # fmt: skip
        c = json.loads((out / "comparison.json").read_text())
        summary[target] = {
            "n_candidates": c["n_candidates"],
            "new_subjects": c["new_subjects"],
            "rows": {
                r["condition"]: {
                    k: r[k]
                    for k in (
                        "mean_relative_rank",
                        "mean_relative_rank_sd",
                        "shuffled_mean_relative_rank",
                        "within_block_mean_relative_rank",
                        "p_value",
                    )  # fmt: skip
                }
                for r in c["rows"]
            },
            "p_vs_chance": {
                r["condition"]: [
                    json.loads((Path(s["run"]) / "metrics.json" if s["run"] else out / "zero_shot.json").read_text())[
                        "test"
                    ]["p_value_vs_chance"]
                    for s in r["seeds"]
                ]
                for r in c["rows"]
            },
        }
    (root / "cohort_study.json").write_text(json.dumps(summary, indent=1))
    return summary


def pooled_vs_own(root: Path, steps: int, tiny: bool) -> dict:
    """Each patient's own model (``steps`` steps) against one model pooled over both (``2 * steps``: the same steps
    per patient), on each patient's ambient test windows (within-block rank, within subject; one-sided Wilcoxon
    over windows: pooled better than own)."""
    from ieegfm.evaluation.evaluate import score_split
    from ieegfm.evaluation.stats import paired_wilcoxon

    packs = {s: root / "packs" / s for s in ("sim01", "sim02")}
    model = TINY if tiny else []
    common = ["data.batch_size=32", "optim.lr=2e-3", *model, *FAST]

    def pretrain(out: Path, shards: str, n: int) -> Path:
        ckpt = out / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            run("pretrain", shards, f"out={out}", f"trainer.max_steps={n}", f"trainer.val_check_interval={n}", *common)
        return ckpt

    pooled = pretrain(root / "pooled", f"shards=[{packs['sim01']},{packs['sim02']}]", 2 * steps)
    out = {"steps_per_patient": steps}
    for s, pack in packs.items():
        own = pretrain(root / f"own-{s}", f"shards={pack}", steps)
        a, b = (score_split(c, pack, "test") for c in (pooled, own))
        ra, rb = (np.asarray(x["per_window"]["relative_rank"]) for x in (a, b))
        out[s] = {
            "n_candidates": a["metrics"]["n_candidates"],
            "pooled": {k: a["metrics"][k] for k in ("mean_relative_rank", "within_block_mean_relative_rank")},
            "own": {k: b["metrics"][k] for k in ("mean_relative_rank", "within_block_mean_relative_rank")},
            "p_pooled_better": paired_wilcoxon(ra, rb)["p_value"],
        }
    (root / "pooled_vs_own.json").write_text(json.dumps(out, indent=1))
    return out


def null_pack(root: Path, hours: float, shared: bool, jitter: float | None) -> Path:
    """The ambient pack of a patient whose recordings hold no audio-driven response (``snr=0 hg_snr=0``), ``hours``
    long: a pooling partner with nothing to share."""
    pack = root / "packs" / "sim09"
    if not (pack / "manifest.json").is_file():
        sim = root / "null-ambient"
        run("simulate", f"out={sim}", "subject=sim09", "seed=9", "snr=0", "hg_snr=0", "semantic_snr=0", f"hours={hours}",
            "days=1", "block_minutes=5", "task_minutes=0", f"shared_responses={shared}",
            f"target_jitter_mm={'null' if jitter is None else jitter}")  # fmt: skip
        run("pack", f"recordings={sim / 'recordings.tsv'}", f"out={pack}")
    return pack


def data_poor(root: Path, hours: float, steps: int, tiny: bool, seeds: int = 1, partner: str = "sim02") -> dict:
    """A data-poor patient: sim01 cut to its first ``hours`` of pretraining data (a subset view), its own model
    (``steps``) against one pooled with all of ``partner``'s (``2 * steps``; ``sim09``: the no-response patient, see
    :func:`null_pack`), each pretrained with ``seeds`` seeds, on
    sim01's ambient test windows (one-sided Wilcoxon over windows of the ranks averaged over seeds: pooled better
    than own)."""
    from ieegfm.evaluation.evaluate import score_split
    from ieegfm.evaluation.stats import paired_wilcoxon
    from ieegfm.shards.subset import subset_view

    a, b = root / "packs" / "sim01", root / "packs" / partner
    out = root / (f"poor-{hours:g}h-{steps}" + ("" if partner == "sim02" else f"-{partner}"))
    small = subset_view(a, out / "sim01-small", hours)
    common = ["data.batch_size=32", "optim.lr=2e-3", *(TINY if tiny else []), *FAST]
    ranks: dict = {"own": [], "pooled": []}
    per_seed: dict = {"own": [], "pooled": []}
    for seed in range(seeds):
        for name, shards, n in (("own", f"shards={small}", steps), ("pooled", f"shards=[{small},{b}]", 2 * steps)):
            folder = out / (name if seed == 0 else f"{name}-seed{seed}")
            ckpt = folder / "checkpoints" / "last.ckpt"
            if not ckpt.is_file():
                run("pretrain", shards, f"out={folder}", f"trainer.max_steps={n}", f"trainer.val_check_interval={n}",
                    f"seed={seed}", *common)  # fmt: skip
            r = score_split(ckpt, a, "test")
            ranks[name].append(np.asarray(r["per_window"]["relative_rank"]))
            per_seed[name].append(r["metrics"]["mean_relative_rank"])
            n_candidates = r["metrics"]["n_candidates"]
    rx, ry = (np.mean(ranks[k], axis=0) for k in ("pooled", "own"))
    result = {
        "sim01_hours": hours,
        "partner": partner,
        "steps_own": steps,
        "n_seeds": seeds,
        "n_candidates": n_candidates,
        "pooled": float(np.mean(per_seed["pooled"])),
        "own": float(np.mean(per_seed["own"])),
        "per_seed": per_seed,
        "p_pooled_better": paired_wilcoxon(rx, ry)["p_value"],
    }
    (out / "data_poor.json").write_text(json.dumps(result, indent=1))
    return result


def grouped_vs_mixed(root: Path, steps: int, tiny: bool) -> dict:
    """One model pooled over sim01 + sim02 with batches of one patient each (``data.group_by_subject=true``:
    unpadded, in-batch negatives from the same patient) against the same with mixed, padded batches, ``2 * steps``
    each; on each patient's ambient test windows (within-block rank, within subject; one-sided Wilcoxon over
    windows: grouped better than mixed)."""
    from ieegfm.evaluation.evaluate import score_split
    from ieegfm.evaluation.stats import paired_wilcoxon

    packs = {s: root / "packs" / s for s in ("sim01", "sim02")}
    shards = f"shards=[{packs['sim01']},{packs['sim02']}]"
    common = [shards, "data.batch_size=32", "optim.lr=2e-3", f"trainer.max_steps={2 * steps}",
              f"trainer.val_check_interval={2 * steps}", *(TINY if tiny else []), *FAST]  # fmt: skip
    ckpts = {}
    for name, group in (("grouped", "true"), ("pooled", "false")):
        ckpts[name] = root / name / "checkpoints" / "last.ckpt"
        if not ckpts[name].is_file():
            run("pretrain", f"out={root / name}", f"data.group_by_subject={group}", *common)
    out = {"steps": 2 * steps}
    for s, pack in packs.items():
        a, b = (score_split(ckpts[k], pack, "test") for k in ("grouped", "pooled"))
        ra, rb = (np.asarray(x["per_window"]["relative_rank"]) for x in (a, b))
        keys = ("mean_relative_rank", "within_block_mean_relative_rank", "shuffled_mean_relative_rank")
        out[s] = {
            "n_candidates": a["metrics"]["n_candidates"],
            "grouped": {k: a["metrics"].get(k) for k in keys},
            "mixed": {k: b["metrics"].get(k) for k in keys},
            "p_grouped_better": paired_wilcoxon(ra, rb)["p_value"],
            "p_mixed_better": paired_wilcoxon(rb, ra)["p_value"],
        }
    (root / "grouped_vs_mixed.json").write_text(json.dumps(out, indent=1))
    return out


def markdown(s: dict) -> str:
    """The summary as a Markdown table."""
    lines = ["| target | condition | mean relative rank | shuffled | p vs task-only | p vs chance (per seed) | candidates |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for target in ("sim03", "sim09"):
        for name, r in s[target]["rows"].items():
            sd = f" ± {r['mean_relative_rank_sd']:.3f}" if r["mean_relative_rank_sd"] is not None else ""
            p = "n/a" if r["p_value"] is None else f"{r['p_value']:.2g}"
            chance = ", ".join(f"{v:.2g}" for v in s[target]["p_vs_chance"][name])
            lines.append(
                f"| {target} | {name} | {r['mean_relative_rank']:.3f}{sd} | {r['shuffled_mean_relative_rank']:.3f} | "
                f"{p} | {chance} | {s[target]['n_candidates']} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/cohort_study")
    p.add_argument("--hours", type=float, default=0.5, help="ambient hours per patient")
    p.add_argument("--task-minutes", type=float, default=16.0)
    p.add_argument("--steps", type=int, default=300, help="pretraining steps")
    p.add_argument("--finetune-steps", type=int, default=120)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny encoder")
    p.add_argument("--pooled", action="store_true", help="also: pooled vs each patient's own model, same steps each")
    p.add_argument("--shared", action="store_true", help="simulate shared_responses=true (an anatomical map)")
    p.add_argument("--spatial", action="store_true", help="model.input=spatial (zero_shot becomes a row)")
    p.add_argument("--poor", type=float, nargs="*", default=[], help="also: sim01 cut to these hours, own vs pooled")
    p.add_argument("--grouped", action="store_true", help="also: pooled with batches of one patient vs mixed")
    p.add_argument("--target-jitter", type=float, default=None, help="simulate target_jitter_mm= (named targets)")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    s = study(
        Path(a.out), a.hours, a.task_minutes, a.steps, a.seeds, a.finetune_steps, a.tiny, a.shared, a.spatial,
        a.target_jitter,
    )  # fmt: skip
    print(markdown(s))
    if a.pooled:
        print(json.dumps(pooled_vs_own(Path(a.out), a.steps, a.tiny), indent=1))
    for hours in a.poor:
        print(json.dumps(data_poor(Path(a.out), hours, 2 * a.steps, a.tiny, a.seeds)))
    if a.poor:  # the control: a partner whose recordings hold nothing to share
        null_pack(Path(a.out), a.hours, a.shared, a.target_jitter)
        for hours in a.poor:
            print(json.dumps(data_poor(Path(a.out), hours, 2 * a.steps, a.tiny, a.seeds, partner="sim09")))
    if a.grouped:
        print(json.dumps(grouped_vs_mixed(Path(a.out), a.steps, a.tiny), indent=1))


if __name__ == "__main__":
    main()
