"""Command line: ``ieegfm {simulate,pack,recordings,pretrain,evaluate,export,finetune,compare,cards,generate,import-n2s,scale,drift,embed,encode,report} [--config FILE] [key=value ...]``.

Each subcommand maps to one function; configuration is the command's typed schema (:mod:`ieegfm.config`), an
optional YAML file and OmegaConf dotlist overrides. User errors (bad file, bad key) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings

from ieegfm.config import describe_keys, load_config
from ieegfm.errors import IeegfmError

COMMANDS = {
    "simulate": "write the built-in simulated dataset (EDF + WAV + TSV + truth.json)",
    "pack": "recordings table (or BIDS root) -> preprocessed WebDataset shards",
    "recordings": "BIDS-iEEG root -> the recordings table it holds, every choice written (to inspect, edit or pack)",
    "verify": "check every shard of a folder against its manifest (present, size, sha256); exit 2 if any is damaged",
    "pretrain": "contrastive pretraining of the brain encoder",
    "evaluate": "retrieval metrics of a pretraining or finetuning checkpoint, with its controls",
    "export": "a checkpoint -> a model folder others can load (model.safetensors, config.json, README.md card)",
    "finetune": "attach a head to a pretrained encoder and train it on a patient's task data",
    "compare": "zero-shot vs task-only vs pretrained + finetuned, with paired tests (the paper's comparison)",
    "cards": "list the model cards of finetuned runs, newest first (ieegfm cards [RUNS_DIR])",
    "generate": "reference vs generated text of a finetuned llm_prefix checkpoint, with permuted and no-brain controls",
    "scale": "scaling law over pretraining hours: nested subsets, pretrain + finetune per point, log-linear fit with CIs",
    "drift": "the recording day decoded from the embeddings (ridge, CV by block, permutation p), ranks per day and hour",
    "embed": "every window's embedding + its subject, block, split, times: embeddings.npy, targets.npy, windows.tsv",
    "encode": "per-electrode encoding models: audio features -> each channel's signal, CV by block, circular-shift null",
    "report": "one HTML (or Markdown) file of the sweeps, comparisons, cards, drift and encoding results under a folder",
    "import-n2s": "a Neuro2Semantic pickle -> task shards for the text heads (ieegfm import-n2s file=PKL sfreq=HZ out=DIR)",
}


def run_simulate(cfg) -> None:
    from ieegfm.simulate import simulate

    print(simulate(cfg))


def run_pack(cfg) -> None:
    from ieegfm.shards.pack import pack

    print(pack(cfg))


def run_recordings(cfg) -> None:
    from ieegfm.shards.inputs import recordings

    print(recordings(cfg))


def run_verify(cfg) -> None:
    from ieegfm.io.manifest import verify_shards

    report = verify_shards(cfg.shards)
    print(json.dumps(report, indent=1))


def run_pretrain(cfg) -> None:
    from ieegfm.pretrain.run import pretrain

    print(pretrain(cfg))


def run_evaluate(cfg) -> None:
    from ieegfm.evaluation.evaluate import evaluate, summary_table
    from ieegfm.evaluation.retrieval import SUMMARY_KEYS

    metrics = evaluate(cfg)
    print(summary_table([metrics]))
    print(json.dumps({k: metrics[k] for k in SUMMARY_KEYS}))


def run_export(cfg) -> None:
    from ieegfm.export import export

    print(export(cfg))


def run_finetune(cfg) -> None:
    from ieegfm.finetune.run import finetune

    out = finetune(cfg)
    print((out / "card.md").read_text() if (out / "card.md").is_file() else out)


def run_compare(cfg) -> None:
    from ieegfm.finetune.compare import compare, comparison_markdown

    print(comparison_markdown(compare(cfg)))
    print(f"{cfg.out}/comparison.json")


def run_cards(cfg) -> None:
    from ieegfm.finetune.cards import cards_table, list_cards

    cards = list_cards(cfg.runs_dir)
    print(cards_table(cards) if cards else f"no card.json under {cfg.runs_dir}")


def run_generate(cfg) -> None:
    from ieegfm.finetune.llm_run import generate

    for i, r in enumerate(generate(cfg)):
        print(f"[{i}] {r['key']}\n  prompt:       ... {r['prompt'][-60:]}\n  heard:        {r['reference']}")
        print(f"  generated:    {r['generated']}\n  permuted:     {r['generated_permuted']}")
        print(f"  no brain:     {r['generated_no_brain']}")
        print(
            f"  loss (nats/token): brain {r['loss']:.3f}, permuted {r['permuted_loss']:.3f}, no brain {r['no_brain_loss']:.3f}"
        )


def run_import_n2s(cfg) -> None:
    from ieegfm.shards.import_n2s import import_n2s

    print(import_n2s(cfg))


def run_scale(cfg) -> None:
    from pathlib import Path

    from ieegfm.analysis.scale import scale

    result = scale(cfg)
    if isinstance(result, Path):
        print(result)
        return
    print((Path(cfg.out) / "scale.md").read_text())
    print(f"{cfg.out}/fit.json")


def run_drift(cfg) -> None:
    from ieegfm.analysis.drift import drift

    r = drift(cfg)
    d = r["day_decoding"]
    print(
        f"day decoded from the embeddings: r = {r['day_r']:.3f}, p = {r['day_p_value']:.3g} ({d['n_perm']} "
        f"permutations of the days among {d['n_blocks']} blocks; null 95th percentile {d['null_r_95']:.3f})"
    )
    for split, v in r["retrieval"].items():
        days = ", ".join(f"day {k}: {g['mean_relative_rank']:.3f}" for k, g in v["by_day"].items())
        print(f"{split}: mean relative rank {v['mean_relative_rank']:.3f} of {v['n_candidates']} ({days})")
    print(f"{cfg.out}/drift.json")


def run_embed(cfg) -> None:
    from ieegfm.analysis.embeddings import embed

    print(embed(cfg))


def run_encode(cfg) -> None:
    from ieegfm.analysis.encode import encode

    r = encode(cfg)
    ranked = sorted(r["channels"].items(), key=lambda kv: -kv[1]["r"])
    print(f"{r['subject']}: {r['features']} -> signal, {r['hours']:.2f} h of {r['n_blocks']} blocks; {r['null']}")
    print("| channel | r | R2 | null 95% | p | significant |\n|---|---|---|---|---|---|")
    for name, v in ranked:
        print(
            f"| {name} | {v['r']:.3f} | {v['r2']:.3f} | {v['null_r_95']:.3f} | {v['p_value']:.3g} | "
            f"{'yes' if v['significant'] else 'no'} |"
        )
    print(f"{cfg.out}/encoding.json")


def run_report(cfg) -> None:
    from ieegfm.analysis.report import report

    print(report(cfg))


RUNNERS = {
    "simulate": run_simulate,
    "pack": run_pack,
    "recordings": run_recordings,
    "verify": run_verify,
    "pretrain": run_pretrain,
    "evaluate": run_evaluate,
    "export": run_export,
    "finetune": run_finetune,
    "compare": run_compare,
    "cards": run_cards,
    "generate": run_generate,
    "import-n2s": run_import_n2s,
    "scale": run_scale,
    "drift": run_drift,
    "embed": run_embed,
    "encode": run_encode,
    "report": run_report,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ieegfm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_ in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="config keys (override with key=value):\n" + describe_keys(name),
        )
        p.add_argument("--config", help="YAML file merged over the defaults (start from --print-config)")
        p.add_argument(
            "--print-config", action="store_true", help="print the resolved config (defaults + overrides) as YAML"
        )
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="OmegaConf dotlist overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ieegfm`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        if args.command in ("pretrain", "evaluate", "finetune", "compare", "generate", "scale", "drift", "embed"):
            import lightning  # noqa: F401  (it configures its loggers on import; quiet them after)
        for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "mne"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    overrides = list(args.overrides)
    if args.command in ("cards", "report") and overrides and "=" not in overrides[0]:  # ieegfm cards RUNS_DIR
        overrides[0] = f"runs_dir={overrides[0]}"
    if args.command == "import-n2s" and overrides and "=" not in overrides[0]:  # ieegfm import-n2s FILE.pkl ...
        overrides[0] = f"file={overrides[0]}"
    config_file = args.config
    specs = [o for o in overrides if o.startswith("spec=")]
    if args.command == "scale" and specs:  # `ieegfm scale spec=SPEC.yaml ...`: the sweep spec is the config file
        if config_file is not None or len(specs) > 1:
            print("ieegfm scale: error: give the sweep spec once (spec=FILE or --config FILE)", file=sys.stderr)
            return 2
        config_file = specs[0].partition("=")[2]
        overrides = [o for o in overrides if o not in specs]
    try:
        cfg = load_config(args.command, config_file, overrides, check_missing=not args.print_config)
        if args.print_config:
            from omegaconf import OmegaConf

            print(f"# ieegfm {args.command}: defaults (see `ieegfm {args.command} --help`)")
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():  # log lines go above the progress bars instead of through them
            RUNNERS[args.command](cfg)
    except IeegfmError as err:
        print(f"ieegfm {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ieegfm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def one_line(err: Exception) -> str:
    """The message of a user error, also when a DataLoader worker raised it (torch then wraps it as
    ``Caught InputError in DataLoader worker process 0.\nOriginal Traceback …\nieegfm.errors.InputError: <message>``)."""
    msg = str(err)
    if "\nOriginal Traceback" in msg:
        msg = msg.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return msg


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
