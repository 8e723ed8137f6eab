"""Model cards of finetuned runs (``card.json`` + ``card.md``) and ``ieegfm cards``, which lists them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

import ieegfm
from ieegfm.conventions import format_number
from ieegfm.errors import InputError

logger = logging.getLogger(__name__)

CARD_METRICS = (
    "mean_relative_rank",
    "within_block_mean_relative_rank",
    "top1_accuracy",
    "top10_accuracy",
    "n_candidates",
    "shuffled_mean_relative_rank",
    "p_value_vs_chance",
)
#: Card metrics of the sentence heads (retrieval among the candidate bank, decoded text, their controls).
SENTENCE_CARD_METRICS = (
    "mean_relative_rank",
    "top1_acc",
    "top5_acc",
    "n_candidates",
    "n_sentences",
    "permuted_mean_relative_rank",
    "p_value",
    "cosine",
    "permuted_cosine",
    "bleu",
    "permuted_bleu",
    "random_bleu",
    "rouge1",
    "rougeL",
    "wer",
    "random_wer",
    "bertscore_f1",
)
#: Card metrics of the LLM-prefix head (its two controls always beside the model).
LLM_CARD_METRICS = (
    "pairwise_accuracy",
    "pairwise_p_value",
    "pairwise_accuracy_vs_no_brain",
    "n_items",
    "loss",
    "permuted_loss",
    "no_brain_loss",
    "bleu1",
    "permuted_bleu1",
    "no_brain_bleu1",
    "bleu4",
    "rouge1_recall",
    "permuted_rouge1_recall",
    "no_brain_rouge1_recall",
    "wer",
)


_fmt = format_number


def _hours(data: dict | None) -> dict:
    """Training-split hours, days and daytime hours of a contract's ``data``."""
    train = ((data or {}).get("hours") or {}).get("train") or {}
    return {
        "hours": train.get("hours"),
        "daytime_hours": train.get("daytime_hours"),
        "days": sorted((train.get("by_day") or {}), key=int),
    }


def _card_keys(test: dict) -> tuple[str, ...]:
    if "pairwise_accuracy" in test:
        return LLM_CARD_METRICS
    return SENTENCE_CARD_METRICS if "n_sentences" in test else CARD_METRICS


def build_card(contract: dict, metrics: dict, cfg) -> dict:
    """The card of a finetuned run (plain data).

    Parameters
    ----------
    contract : dict
        The run's :class:`~ieegfm.checkpoint.CheckpointContract` (``kind='finetune'``).
    metrics : dict
        ``metrics.json`` of the run (``test`` with controls, training figures).
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig`.
    """
    pre = contract.get("pretrained") or {}
    pack = (contract["data"].get("pack_config") or {}).get("preprocess") or {}
    subjects = {
        s: {"n_channels": len(v["ch_names"]), "ch_names": v["ch_names"]} for s, v in contract["subjects"].items()
    }
    return {
        "subject": "+".join(sorted(subjects)),
        "subjects": subjects,
        "montage": pack.get("montage"),
        "task": contract["training"].get("task"),
        "task_shards": contract["data"]["shards"],
        "task_hours": {sp: v.get("hours") for sp, v in (contract["data"].get("hours") or {}).items()},
        "head": (contract.get("head") or {}).get("name"),
        "head_config": contract.get("head"),
        "encoder": contract["encoder"]["name"],
        "init": contract["training"].get("init"),
        "freeze": contract["training"].get("freeze"),
        "objective": contract["training"].get("objective"),
        "seed": contract["training"].get("seed"),
        "lr": contract["training"].get("lr"),
        "encoder_lr_scale": contract["training"].get("encoder_lr_scale"),
        "new_subjects": contract["training"].get("new_subjects") or [],
        "pretraining": {
            "ckpt": pre.get("path"),
            "sha256": pre.get("sha256"),
            "used": pre.get("used"),
            "shards": (pre.get("data") or {}).get("shards"),
            **_hours(pre.get("data")),
        },
        "metrics": {k: metrics["test"].get(k) for k in _card_keys(metrics["test"]) if k in metrics["test"]},
        "comparison": metrics.get("comparison"),
        "training": {
            k: metrics.get(k) for k in ("global_step", "stopped_early", "best_val_mean_relative_rank", "s_per_step")
        },
        "max_steps": OmegaConf.select(cfg, "trainer.max_steps"),
        "ieegfm_version": ieegfm.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def card_markdown(card: dict) -> str:
    """``card.md``: the card as a short Markdown document."""
    m, p = card["metrics"], card["pretraining"]

    f = _fmt

    lines = [
        f"# {card['subject']} / {card['task']} / {card['head']} head ({card['init']}, freeze={card['freeze']}, seed {card['seed']})",
        "",
        f"- subject(s): {card['subject']}; channels: "
        + "; ".join(
            f"{s}: {v['n_channels']} ({', '.join(v['ch_names'][:6])}{', ...' if v['n_channels'] > 6 else ''})"
            for s, v in card["subjects"].items()
        ),
        f"- montage: {card['montage']}; encoder: {card['encoder']}; objective: {card['objective']}; "
        + ("" if card.get("lr") is None else f"lr {card['lr']:g}, encoder ")
        + ("frozen" if card.get("encoder_lr_scale") is None else f"at {card['encoder_lr_scale']:g} x lr"),
        f"- pretraining: {p['ckpt']} (sha256 {str(p['sha256'])[:12]}..., {'used' if p['used'] else 'architecture only: trained from scratch'}); "
        f"{f(p['hours'], 2)} h on {len(p['days'])} day(s), {f(p['daytime_hours'], 2)} h in daytime",
        *(
            [
                f"- new patient(s), never seen in pretraining: {', '.join(card['new_subjects'])} (a new input layer "
                "each, trained on the task data)"
            ]  # fmt: skip
            if card.get("new_subjects")
            else []
        ),
        f"- task data: {card['task_shards']}; hours "
        + ", ".join(f"{k} {f(v, 3)}" for k, v in card["task_hours"].items()),
        "",
        "| test metric | value |",
        "|---|---|",
        *(f"| {k.replace('_', ' ')} | {f(v)} |" for k, v in m.items()),
    ]
    if card.get("comparison"):
        c = card["comparison"]
        lines += ["", f"Comparison ({c.get('condition')}): p = {f(c.get('p_value'))} vs task-only ({c.get('test')})."]
        sel = c.get("selection")
        if sel:
            points = [
                f"lr {g['lr']:g}"
                + ("" if g["encoder_lr_scale"] is None else f" x{g['encoder_lr_scale']:g}")
                + f": {f(g['val_mean_relative_rank'])}{' (chosen)' if g['chosen'] else ''}"
                for g in sel["grid"]
            ]
            lines += ["", f"Learning rate chosen on validation ({sel['criterion']}): " + "; ".join(points) + "."]
    lines += ["", f"ieegfm {card['ieegfm_version']}, {card['date']}"]
    return "\n".join(lines) + "\n"


def write_card(run: Path, contract: dict, metrics: dict, cfg) -> dict:
    """Write ``card.json`` and ``card.md`` into ``run``; return the card."""
    card = build_card(contract, metrics, cfg)
    (run / "card.json").write_text(json.dumps(card, indent=1))
    (run / "card.md").write_text(card_markdown(card))
    return card


def update_card(run: Path, comparison: dict) -> None:
    """Add a comparison result (condition, p-value vs task-only, test) to a run's card."""
    card = json.loads((run / "card.json").read_text())
    card["comparison"] = comparison
    (run / "card.json").write_text(json.dumps(card, indent=1))
    (run / "card.md").write_text(card_markdown(card))


def list_cards(runs_dir: str | Path) -> list[dict]:
    """Every ``card.json`` under ``runs_dir``, newest first, each with its ``run`` folder.

    Raises
    ------
    InputError
        ``runs_dir`` does not exist.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise InputError(f"runs_dir={root}: folder not found")
    cards = []
    for path in root.rglob("card.json"):
        try:
            card = json.loads(path.read_text())
            card["run"] = str(path.parent)
            cards.append(card)
        except (json.JSONDecodeError, OSError) as err:
            logger.warning("skipping unreadable card %s (%s)", path, err)
    return sorted(cards, key=lambda c: c.get("date", ""), reverse=True)


def _pretraining_hours(card: dict) -> str:
    pre = card.get("pretraining") or {}
    if not pre.get("used"):
        return "none (scratch)"
    return "n/a" if pre.get("hours") is None else f"{pre['hours']:.2f}"


def cards_table(cards: list[dict]) -> str:
    """Markdown table of cards: subject, task, head, init/freeze, test metrics, pretraining hours, run."""
    head = (
        "| date | subject | task | head | init | freeze | seed | test rank | within-block | shuffled/permuted | "
        "p vs task-only | pretraining h | run |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )

    f = _fmt

    rows = [head]
    for c in cards:
        m = c.get("metrics", {})
        comp = c.get("comparison") or {}
        rows.append(
            f"| {c.get('date', '')[:16]} | {c.get('subject')} | {c.get('task')} | {c.get('head')} | {c.get('init')} | "
            f"{c.get('freeze')} | {c.get('seed')} | {f(m.get('mean_relative_rank'))} | "
            f"{f(m.get('within_block_mean_relative_rank'))} | "
            f"{f(m.get('shuffled_mean_relative_rank', m.get('permuted_mean_relative_rank')))} | "
            f"{f(comp.get('p_value'))} | {_pretraining_hours(c)} | {c['run']} |"
        )
    return "\n".join(rows)
