"""The README demo: simulate -> pack -> pretrain (3 models) -> evaluate -> finetune comparison, on this CPU.

Prints the test-split mean relative rank of the conv-attention encoder (both poolings) and of the linear
baseline, each with its shuffled-pairs control, then packs the simulated task session on the pretraining channels
and runs the paper's comparison (zero-shot / task-only / pretrained + finetuned, frozen and full, 3 seeds, each
trained row's learning rates chosen on validation) with the conv-attention/mean checkpoint. Writes ``<out>/summary.md`` and ``<out>/summary.json``. Each step is the same
function the CLI runs (``ieegfm simulate/pack/pretrain/evaluate/compare``) with the same configs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

from ieegfm.config import load_config
from ieegfm.errors import IeegfmError
from ieegfm.io.manifest import read_manifest

MODELS = [
    ("conv_attention", "mean"),
    ("conv_attention", "none"),
    ("linear", "mean"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--hours", type=float, default=4.0, help="simulated hours (over 2 days)")
    p.add_argument("--max-steps", type=int, default=400, help="pretraining steps per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task-minutes", type=float, default=24.0, help="simulated task session (min; 0: no comparison)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per trained row of the comparison")
    p.add_argument("--finetune-steps", type=int, default=120, help="finetuning steps at most (early stopping)")
    p.add_argument(
        "--lr-grid", default="[3e-4,1e-3,3e-3]", help="compare's lr_grid (each trained row tuned on validation)"
    )
    p.add_argument("--encoder-lr-scales", default="[0.1,1.0]", help="compare's encoder_lr_scales (finetuned_full)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    import lightning  # noqa: F401  (it configures its loggers on import; quiet them after)

    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "mne"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    from ieegfm.evaluation.evaluate import evaluate, summary_table
    from ieegfm.finetune.compare import compare, comparison_markdown
    from ieegfm.pretrain.run import pretrain
    from ieegfm.shards.pack import pack
    from ieegfm.simulate import simulate

    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        tsv = simulate(
            load_config(
                "simulate",
                overrides=[
                    f"out={out / 'data'}",
                    f"hours={args.hours}",
                    "days=2",
                    f"seed={args.seed}",
                    f"task_minutes={args.task_minutes}",
                ],
            )
        )
        timings["simulate"] = time.perf_counter() - t
        t = time.perf_counter()
        pack(load_config("pack", overrides=[f"recordings={tsv}", f"out={out / 'shards'}", "audio.features=logmel"]))
        timings["pack"] = time.perf_counter() - t
        rows = []
        for encoder, pooling in MODELS:
            name = f"{encoder}-{pooling}"
            t = time.perf_counter()
            ckpt = pretrain(
                load_config(
                    "pretrain",
                    overrides=[
                        f"shards={out / 'shards'}",
                        f"out={out / 'runs' / name}",
                        f"seed={args.seed}",
                        f"model.encoder={encoder}",
                        f"model.pooling={pooling}",
                        f"trainer.max_steps={args.max_steps}",
                        "trainer.accelerator=cpu",
                        "trainer.enable_progress_bar=false",
                    ],
                )
            )
            timings[f"pretrain {name}"] = time.perf_counter() - t
            rows.append(
                evaluate(
                    load_config(
                        "evaluate",
                        overrides=[
                            f"ckpt={ckpt}",
                            f"shards={out / 'shards'}",
                            "split=test",
                            f"out={out / 'runs' / name / 'test.json'}",
                        ],
                    )
                )
            )
        comparison = None
        if args.task_minutes > 0:  # the paper's comparison on the task session, from the conv-attention/mean model
            t = time.perf_counter()
            task = out / "task_shards"
            pack(
                load_config(
                    "pack",
                    overrides=[
                        f"recordings={tsv.parent / 'recordings_task.tsv'}",
                        f"out={task}",
                        f"channels_from={out / 'shards'}",
                        "split.val=0.25",
                        "split.test=0.25",
                        "chunk_s=30",  # 30-s chunks: compare task_fractions=[0.0625, ...] holds one chunk at 1/16
                    ],
                )
            )
            timings["pack task"] = time.perf_counter() - t
            t = time.perf_counter()
            comparison = compare(
                load_config(
                    "compare",
                    overrides=[
                        f"ckpt={out / 'runs' / 'conv_attention-mean' / 'checkpoints' / 'last.ckpt'}",
                        f"shards={task}",
                        f"out={out / 'compare'}",
                        f"seeds={args.seeds}",
                        f"lr_grid={args.lr_grid}",
                        f"encoder_lr_scales={args.encoder_lr_scales}",
                        f"trainer.max_steps={args.finetune_steps}",
                        "trainer.accelerator=cpu",
                        "trainer.enable_progress_bar=false",
                    ],
                )
            )
            timings["compare"] = time.perf_counter() - t
    except IeegfmError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    table = summary_table(rows)
    manifest = read_manifest(out / "shards")
    hours = {k: round(v.hours, 2) for k, v in manifest.splits.items()}
    text = (
        f"# ieegfm demo ({args.hours} h simulated over 2 days, log-mel targets, {args.max_steps} steps/model)\n\n"
        f"Packed hours per split: {hours}\n\n{table}\n\nTimings (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
        + f"; total {sum(timings.values()):.0f}\n"
    )
    if comparison is not None:
        text += "\n## Finetuning comparison (task session, conv_attention/mean checkpoint)\n\n" + comparison_markdown(
            comparison
        )
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(
        json.dumps({"rows": rows, "comparison": comparison, "timings_s": timings, "hours": hours}, indent=1)
    )
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
