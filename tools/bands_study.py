"""Which band holds the answer: ``preprocess.bands=[lfp]`` against ``[lfp,highgamma]`` where the truth is known.

Usage: ``python tools/bands_study.py --out runs/bands_study [--hours 0.5] [--steps 300] [--seeds 3] [--tiny]
[--responses highgamma lfp both]``

For each ``simulate response=`` (``highgamma``: the audio-driven response only in the 70-170 Hz envelope, which
the 0.05-50 Hz signal at 40 Hz cannot see; ``lfp``: only in the low-frequency signal; ``both``: the simulator's
default), one simulated patient is packed twice, once per band set, and pretrained on each with the same seeds;
the test windows' mean relative rank (candidates within subject) with its shuffled-pairs control, and a one-sided
Wilcoxon test over windows (seed-averaged ranks) that the high-gamma pack ranks better. Writes
``bands_study.json`` and prints a Markdown table; the steps are the public commands (``simulate``, ``pack``,
``pretrain``) and :func:`ieegfm.evaluation.evaluate.score_split`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ieegfm.__main__ import main as ieegfm

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
TINY = ["model.hidden=32", "model.projected_chans=16", "model.depth=2"]
BAND_SETS = {"lfp": "[lfp]", "lfp+highgamma": "[lfp,highgamma]"}


def run(*args: str) -> None:
    """One ieegfm command; a failure stops the study."""
    if ieegfm(list(args)) != 0:
        raise SystemExit(f"ieegfm {' '.join(args)} failed")


def one_response(root: Path, response: str, hours: float, steps: int, seeds: int, tiny: bool) -> dict:
    """Simulate, pack with each band set, pretrain ``seeds`` models on each, score the test windows."""
    from ieegfm.evaluation.evaluate import score_split
    from ieegfm.evaluation.stats import paired_wilcoxon

    sim = root / response / "sim"
    if not (sim / "recordings.tsv").is_file():
        run("simulate", f"out={sim}", f"hours={hours}", "days=1", "block_minutes=5", "task_minutes=0", "seed=0",
            f"response={response}")  # fmt: skip
    out: dict = {"response": response}
    ranks = {}
    for name, bands in BAND_SETS.items():
        pack = root / response / f"pack-{name}"
        if not (pack / "manifest.json").is_file():
            run("pack", f"recordings={sim / 'recordings.tsv'}", f"out={pack}", f"preprocess.bands={bands}")
        rows, shuffled = [], []
        for seed in range(seeds):
            ckpt = root / response / f"pre-{name}-seed{seed}" / "checkpoints" / "last.ckpt"
            if not ckpt.is_file():
                run("pretrain", f"shards={pack}", f"out={ckpt.parent.parent}", f"trainer.max_steps={steps}",
                    f"trainer.val_check_interval={steps}", "data.batch_size=32", "optim.lr=2e-3", f"seed={seed}",
                    *(TINY if tiny else []), *FAST)  # fmt: skip
            scored = score_split(ckpt, pack, "test")
            rows.append(np.asarray(scored["per_window"]["relative_rank"]))
            shuffled.append(scored["metrics"]["shuffled_mean_relative_rank"])
            out["n_candidates"] = scored["metrics"]["n_candidates"]
        ranks[name] = np.mean(rows, axis=0)
        out[name] = {
            "mean_relative_rank": float(ranks[name].mean()),
            "per_seed": [float(r.mean()) for r in rows],
            "shuffled_mean_relative_rank": float(np.mean(shuffled)),
        }
    out["p_highgamma_better"] = paired_wilcoxon(ranks["lfp+highgamma"], ranks["lfp"])["p_value"]
    return out


def study(root: Path, responses: list[str], hours: float, steps: int, seeds: int, tiny: bool) -> dict:
    """:func:`one_response` for each response; written to ``bands_study.json``."""
    root.mkdir(parents=True, exist_ok=True)
    s = {"hours": hours, "steps": steps, "seeds": seeds, "tiny": tiny}
    s["responses"] = [one_response(root, r, hours, steps, seeds, tiny) for r in responses]
    (root / "bands_study.json").write_text(json.dumps(s, indent=1))
    return s


def markdown(s: dict) -> str:
    """The study as a Markdown table."""
    lines = [
        "| simulate response= | bands=[lfp] | bands=[lfp,highgamma] | shuffled | p (high gamma better) | candidates |",
        "|---|---|---|---|---|---|",
    ]
    for r in s["responses"]:
        a, b = r["lfp"], r["lfp+highgamma"]
        shuffled = f"{min(a['shuffled_mean_relative_rank'], b['shuffled_mean_relative_rank']):.3f}-"
        shuffled += f"{max(a['shuffled_mean_relative_rank'], b['shuffled_mean_relative_rank']):.3f}"
        lines.append(
            f"| {r['response']} | {a['mean_relative_rank']:.3f} | {b['mean_relative_rank']:.3f} | {shuffled} | "
            f"{r['p_highgamma_better']:.2g} | {r['n_candidates']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bands_study")
    p.add_argument("--hours", type=float, default=0.5, help="simulated ambient hours")
    p.add_argument("--steps", type=int, default=300, help="pretraining steps per model")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny encoder")
    p.add_argument("--responses", nargs="+", default=["highgamma", "lfp", "both"])
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    print(markdown(study(Path(a.out), a.responses, a.hours, a.steps, a.seeds, a.tiny)))


if __name__ == "__main__":
    main()
