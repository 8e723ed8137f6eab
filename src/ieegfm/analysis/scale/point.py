"""One point of a sweep: pretrain on its subset of the hours, score zero-shot, finetune each row, write its card.

A point runs through the functions a user calls: :func:`ieegfm.pretrain.run.pretrain`,
:func:`ieegfm.evaluation.evaluate.score_split` and :func:`ieegfm.finetune.tune.tune_condition` (the per-row
learning-rate choice of ``ieegfm compare``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.analysis.scale.plan import Point, compare_config, pretrain_config, test_split_id
from ieegfm.evaluation.evaluate import score_split
from ieegfm.finetune.tune import tune_condition
from ieegfm.io.manifest import read_manifest, write_json_atomic
from ieegfm.pretrain.run import pretrain
from ieegfm.shards.subset import subset_view

__all__ = ["run_point"]

logger = logging.getLogger(__name__)


def _identity(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_point(cfg, p: Point) -> dict:
    """Pretrain, score and finetune one point; write and return its ``card.json`` (reused when it matches).

    Returns
    -------
    card : dict
        ``condition``, ``hours`` (the budget), ``hours_per_subject`` (kept), ``hours_per``, ``patients`` (the
        pretraining patients on the patients axis, else None), ``group``, ``seed``, ``compute`` (policy,
        ``max_steps``, ``steps_done``, ``early_stopping_patience``, ``train_windows``), ``rows``
        (``pretrain_test``, ``zero_shot``, each finetuned row and, at
        the smallest budget, ``task_only``: summary metrics and per-window relative ranks), ``identity``,
        ``wall_s``.
    """
    tic = time.perf_counter()
    where = Path(cfg.out) / "subsets" / p.condition
    if p.patients is not None:
        where = where / f"{len(p.patients)}p"
    subset = subset_view(
        p.pretrain_shards,
        where / (p.label if cfg.hours_per == "patient" else f"{p.label}-total"),
        p.subject_hours,
        cfg.order,
        cfg.order_seed,
        p.daytime_only,
        subjects=None if p.patients is None else list(p.patients),
    )
    manifest = read_manifest(subset)
    pcfg = pretrain_config(cfg, p.overrides, subset, p.folder / "pretrain", p.seed)
    train_windows = manifest.splits["train"].n_windows
    if cfg.compute == "epochs":
        world = int(pcfg.trainer.devices if isinstance(pcfg.trainer.devices, int) else 1) * pcfg.trainer.num_nodes
        pcfg.trainer.max_steps = max(1, math.ceil(cfg.epochs * train_windows / (pcfg.data.batch_size * world)))
    compute = {
        "policy": cfg.compute,
        "early_stopping_patience": int(pcfg.trainer.early_stopping_patience),
        "epochs": cfg.epochs if cfg.compute == "epochs" else None,
        "max_steps": int(pcfg.trainer.max_steps),
        "train_windows": train_windows,
        "epochs_done": int(pcfg.trainer.max_steps) * pcfg.data.batch_size / max(train_windows, 1),
    }
    identity = _identity(
        {
            "pretrain": {k: v for k, v in OmegaConf.to_container(pcfg).items() if k not in ("out", "resume")},
            "subset": manifest.subset,
            "finetune": OmegaConf.to_container(cfg.finetune),
            "task_only": p.task_only,
            "task_test_split": test_split_id(p.task_shards),
        }
    )
    card_path = p.folder / "card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        if card.get("identity") == identity:
            return card
    p.folder.mkdir(parents=True, exist_ok=True)
    run = p.folder / "pretrain"
    same = (run / "config.yaml").is_file() and OmegaConf.to_container(OmegaConf.load(run / "config.yaml")) == (
        OmegaConf.to_container(pcfg, resolve=True)
    )
    if run.is_dir() and not same:  # another config's run: resuming its checkpoints would mix two experiments
        logger.warning("scale: %s was pretrained with another config; starting it again", run)
        shutil.rmtree(run)
    done = same and (run / "summary.json").is_file()
    ckpt = Path(json.loads((run / "summary.json").read_text())["best_checkpoint"]) if done else pretrain(pcfg)
    compute["steps_done"] = json.loads((run / "summary.json").read_text()).get("global_step")
    rows: dict[str, dict] = {}
    for name, shards, channels in (
        ("pretrain_test", subset, "exact"),
        ("zero_shot", p.task_shards, cfg.finetune.channels),
    ):
        scored = score_split(ckpt, shards, "test", channels)
        rows[name] = {"test": scored["metrics"], "per_window": scored["per_window"]}
    cmp = compare_config(cfg, ckpt, p.task_shards)
    trained = list(cfg.finetune.rows) + (["task_only"] if p.task_only else [])
    for row in trained:  # learning rates chosen on the task's validation split, as in ieegfm compare
        tuned = tune_condition(cmp, row, [p.seed], p.folder / row)
        rows[row] = {**tuned["runs"][0], "selection": tuned["selection"]}
    card = {
        "index": p.index,
        "condition": p.condition,
        "hours": p.hours,
        "hours_per_subject": manifest.subset["hours_per_subject"],
        "hours_per": cfg.hours_per,
        "patients": None if p.patients is None else list(p.patients),
        "group": p.group,
        "daytime_only": p.daytime_only,
        "order": cfg.order,
        "seed": p.seed,
        "compute": compute,
        "pretrain_shards": str(p.pretrain_shards),
        "task_shards": str(p.task_shards),
        "checkpoint": str(ckpt),
        "overrides": p.overrides,
        "rows": {
            k: {"test": v["test"], "per_window": _slim(v["per_window"]), "selection": v.get("selection")}
            for k, v in rows.items()
        },
        "identity": identity,
        "wall_s": time.perf_counter() - tic,
    }
    write_json_atomic(card, card_path, sort_keys=False)
    return card


def _slim(per_window: dict) -> dict:
    return {k: per_window[k] for k in ("key", "subject", "relative_rank") if k in per_window}
