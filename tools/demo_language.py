"""The language-head demo (``make demo-language``), after ``make demo``: the text-embedding head on the simulated task.

Packs the demo's task session again with one block each for validation and test (the simulator's narration rereads
its 172-sentence pool, and test sentences are removed from training: more held-out blocks would leave too few
training sentences), then trains ``ieegfm finetune head=text_embedding`` from the demo's conv-attention/mean checkpoint
(frozen encoder, full finetuning, and the same architecture from scratch; ``--seeds`` seeds each), and, as the
no-leakage control, on a simulation of the same patient without the semantic component (``semantic_snr=0``).
Every row carries its permuted-brain control; rows are compared with paired Wilcoxon tests over the same test
sentences (per-sentence ranks averaged over seeds). Writes ``<out>/language/summary.md`` and ``summary.json``.

With ``--llm-steps N`` the LLM-prefix head follows, on the task and on the no-semantic control alike: its prefix
goes through the sentence embedding (``head_options.prefix_from=sentence_embedding``, 4 soft tokens), warm-started
from seed 0 of that data's ``finetuned_full`` text-embedding run (``llm.align_ckpt``), the first N steps train the
mapper on text alone (``llm.text_steps``), ``--llm-brain-steps`` more on the brain's prefix; the encoder frozen,
the checkpoint selected on the validation loss of the brain's prefix. Each prints its pairwise accuracy against the
permuted-brain control with the sign test's p-value.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ieegfm.config import load_config
from ieegfm.errors import IeegfmError

CONDITIONS = {
    "finetuned_frozen": ["init=pretrained", "freeze=encoder"],
    "finetuned_full": ["init=pretrained", "freeze=none"],
    "task_only": ["init=scratch", "freeze=none"],
}


def _row(name: str, runs: list[dict]) -> dict:
    def ms(key):
        v = np.array([r[key] for r in runs], float)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    return {
        "condition": name,
        "n_seeds": len(runs),
        **{
            k: ms(k)
            for k in (
                "mean_relative_rank",
                "permuted_mean_relative_rank",
                "top1_acc",
                "top5_acc",
                "cosine",
                "bleu",
                "random_bleu",
                "rouge1",
                "wer",
                "s_per_step",
            )
        },  # fmt: skip
        "p_value_vs_permuted": [r["p_value"] for r in runs],
        "n_candidates": runs[0]["n_candidates"],
        "n_sentences": runs[0]["n_sentences"],
        "ranks": np.mean([[p["relative_rank"] for p in r["per_sentence"]] for r in runs], axis=0).tolist(),
    }


def _llm_lines(name: str, m: dict) -> list[str]:
    """The LLM-prefix run beside its two controls."""
    keys = ("loss", "bleu1", "bleu4", "rouge1_recall", "rougeL_recall", "wer")
    info = m["llm"]
    lines = [
        f"## {name} ({info['model']}, frozen; {m['n_items']} test windows, {m['n_generated']} generated; "
        f"{m['global_step']} steps ({info.get('text_steps', 0)} text-only), selected at step {m['best_step']}, "
        f"{m['s_per_step']:.2f} s/step, fit {m['fit_s'] / 60:.1f} min, peak RSS {m['peak_rss_mb']:.0f} MB, "
        f"bf16 {m['bf16']})",
        "",
        "| condition | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for name, prefix in (("brain", ""), ("permuted brain", "permuted_"), ("no brain", "no_brain_")):
        lines.append(f"| {name} | " + " | ".join(f"{m[prefix + k]:.3f}" for k in keys) + " |")
    lines += [
        "",
        f"Pairwise accuracy (own brain vs another item's, lower continuation loss): {m['pairwise_accuracy']:.3f} "
        f"(sign test p = {m['pairwise_p_value']:.2g}); vs no brain {m['pairwise_accuracy_vs_no_brain']:.3f} "
        f"(p = {m['pairwise_p_value_vs_no_brain']:.2g}). Loss: continuation cross-entropy (nats/token).",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo", help="the folder `make demo` wrote")
    p.add_argument("--seeds", type=int, default=3, help="seeds per condition")
    p.add_argument("--steps", type=int, default=200, help="finetuning steps at most (early stopping)")
    p.add_argument(
        "--llm-steps",
        type=int,
        default=0,
        help="also train the LLM-prefix head (SmolLM2-135M-Instruct, frozen): N text-only steps of its mapper, one "
        "seed, on the task and on the no-semantic control (CPU: ~1.7 s/step)",
    )
    p.add_argument("--llm-brain-steps", type=int, default=0, help="LLM steps on the brain's prefix after the text ones")
    p.add_argument(
        "--reuse", action="store_true", help="keep packs and finished runs (metrics.json) of an earlier call"
    )
    p.add_argument("--llm-monitor", default="loss_vs_permuted", help="llm.monitor of the LLM-prefix runs")
    p.add_argument("--llm-lr", type=float, default=1e-3, help="learning rate of the LLM-prefix head")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    import lightning  # noqa: F401

    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "mne"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    ckpt = out / "runs" / "conv_attention-mean" / "checkpoints" / "last.ckpt"
    if not ckpt.is_file() or not (out / "shards" / "manifest.json").is_file():
        print(f"demo-language: error: {ckpt} or {out / 'shards'} missing; run `make demo` first", file=sys.stderr)
        return 2
    lang = out / "language"
    task = lang / "task_shards"
    from ieegfm.evaluation.stats import paired_wilcoxon
    from ieegfm.finetune.run import finetune
    from ieegfm.shards.pack import pack
    from ieegfm.simulate import simulate

    common = [f"ckpt={ckpt}", "head=text_embedding", f"trainer.max_steps={args.steps}", "trainer.accelerator=cpu",
              "trainer.enable_progress_bar=false", "trainer.val_check_interval=10", "trainer.patience=5"]  # fmt: skip
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        for table, shards in ((out / "data" / "recordings_task.tsv", task),):
            if args.reuse and (shards / "manifest.json").is_file():
                continue
            pack(
                load_config(
                    "pack", overrides=[f"recordings={table}", f"out={shards}", f"channels_from={out / 'shards'}"]
                )
            )
        timings["pack task"] = time.perf_counter() - t
        t = time.perf_counter()
        demo_cfg = json.loads((out / "data" / "truth.json").read_text())["config"]
        reuse_plain = args.reuse and (lang / "plain_task_shards" / "manifest.json").is_file()
        plain = (
            None
            if reuse_plain
            else simulate(
                load_config(
                    "simulate",
                    overrides=[
                        f"out={lang / 'plain_data'}",
                        "hours=0.1",
                        f"days={demo_cfg['days']}",
                        f"seed={demo_cfg['seed']}",
                        f"task_minutes={demo_cfg['task_minutes']}",
                        f"task_blocks={demo_cfg['task_blocks']}",
                        "semantic_snr=0",
                    ],
                )
            )
        )
        if plain is not None:
            pack(
                load_config(
                    "pack",
                    overrides=[
                        f"recordings={plain.parent / 'recordings_task.tsv'}",
                        f"out={lang / 'plain_task_shards'}",
                        f"channels_from={out / 'shards'}",
                    ],
                )
            )
        timings["control simulation + pack"] = time.perf_counter() - t
        results: dict[str, list[dict]] = {}
        rows = [
            *((name, task, over) for name, over in CONDITIONS.items()),
            ("no_semantic_component (finetuned_full)", lang / "plain_task_shards", CONDITIONS["finetuned_full"]),
        ]
        for name, shards, over in rows:
            t = time.perf_counter()
            for seed in range(args.seeds):
                run = lang / "runs" / name.split(" ")[0] / f"seed{seed}"
                if not (args.reuse and (run / "metrics.json").is_file()):
                    over_seed = [*common, f"shards={shards}", f"out={run}", f"seed={seed}", *over]
                    finetune(load_config("finetune", overrides=over_seed))
                results.setdefault(name, []).append(json.loads((run / "metrics.json").read_text()))
            timings[name] = time.perf_counter() - t
        llm = {}
        if args.llm_steps > 0:  # brain -> the text head's sentence embedding -> soft tokens (see the docstring)
            steps = args.llm_steps + args.llm_brain_steps
            for name, shards, align in (("llm_prefix", task, "finetuned_full"),
                                        ("llm_prefix no_semantic_component", lang / "plain_task_shards",
                                         "no_semantic_component")):  # fmt: skip
                t = time.perf_counter()
                run = lang / "runs" / name.replace(" ", "-") / f"text{args.llm_steps}-brain{args.llm_brain_steps}"
                llm_over = [f"ckpt={ckpt}", f"shards={shards}", f"out={run}", "head=llm_prefix", "init=pretrained",
                            "freeze=encoder", f"trainer.max_steps={steps}", "trainer.accelerator=cpu",
                            "trainer.enable_progress_bar=false", f"trainer.val_check_interval={max(steps // 8, 1)}",
                            "trainer.patience=100", "data.batch_size=8", "llm.n_generate=24",
                            "head_options.prefix_from=sentence_embedding", "head_options.n_tokens=4",
                            f"llm.align_ckpt={lang / 'runs' / align / 'seed0' / 'model.ckpt'}",
                            f"llm.text_steps={args.llm_steps}", f"optim.lr={args.llm_lr}",
                            f"llm.monitor={args.llm_monitor}"]  # fmt: skip
                if not (args.reuse and (run / "metrics.json").is_file()):
                    finetune(load_config("finetune", overrides=llm_over))
                llm[name] = json.loads((run / "metrics.json").read_text())
                timings[name] = time.perf_counter() - t
    except IeegfmError as err:
        print(f"demo-language: error: {err}", file=sys.stderr)
        return 2
    table = [_row(name, runs) for name, runs in results.items()]
    base = next(r for r in table if r["condition"] == "task_only")
    for r in table:
        same = len(r["ranks"]) == len(base["ranks"]) and r["condition"] in CONDITIONS
        r["p_vs_task_only"] = (
            paired_wilcoxon(np.array(r["ranks"]), np.array(base["ranks"]))["p_value"]
            if same and r is not base
            else None
        )

    def f(v, d=3):
        return f"{v[0]:.{d}f} ± {v[1]:.{d}f}"

    first = table[0]
    lines = [
        f"# Text-embedding head on the simulated task ({first['n_sentences']} held-out test sentences, "
        f"{first['n_candidates']} candidates, {args.seeds} seeds, all-MiniLM-L6-v2 targets)",
        "",
        "| condition | mean relative rank | permuted | top-1 | top-5 | cosine | BLEU | random-sentence BLEU | ROUGE-1 | "
        "WER | p vs permuted (per seed) | p vs task-only |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        pv = ", ".join(f"{p:.2g}" for p in r["p_value_vs_permuted"])
        pt = "n/a" if r["p_vs_task_only"] is None else f"{r['p_vs_task_only']:.2g}"
        lines.append(
            f"| {r['condition']} | {f(r['mean_relative_rank'])} | {f(r['permuted_mean_relative_rank'])} | "
            f"{f(r['top1_acc'])} | {f(r['top5_acc'])} | {f(r['cosine'])} | {f(r['bleu'], 1)} | "
            f"{f(r['random_bleu'], 1)} | {f(r['rouge1'])} | {f(r['wer'])} | {pv} | {pt} |"
        )
    lines += [
        "",
        "Chance mean relative rank 0.5. p vs permuted: one-sided Wilcoxon over test sentences, true vs permuted "
        "brain (20 derangements). p vs task-only: one-sided Wilcoxon over the same test sentences, ranks averaged "
        "over seeds. BLEU: sacrebleu corpus BLEU-4 (0-100) of the retrieved sentence.",
        "",
        "Time per step (s): " + ", ".join(f"{r['condition']} {r['s_per_step'][0]:.3f}" for r in table),
        "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
    ]
    for name, m in llm.items():
        lines += ["", *_llm_lines(name, m)]
    text = "\n".join(lines) + "\n"
    lang.mkdir(parents=True, exist_ok=True)
    (lang / "summary.md").write_text(text)
    (lang / "summary.json").write_text(json.dumps({"rows": table, "llm_prefix": llm, "timings_s": timings}, indent=1))
    for name, m in llm.items():
        print(f"{name}: pairwise accuracy vs permuted brain {m['pairwise_accuracy']:.3f} "
              f"(sign test p = {m['pairwise_p_value']:.2g}, {m['n_items']} test windows)")  # fmt: skip
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
