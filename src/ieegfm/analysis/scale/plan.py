"""A sweep's plan: its points (condition x hours x seed) and each point's configs, after every check that needs
no training (the hours the shards hold, the patients of every shard set, the task split the finished points used).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.config import CompareConfig, load_config
from ieegfm.config.enums import FINETUNE_ROWS
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.manifest import read_manifest, write_json_atomic
from ieegfm.shards.subset import ALL, chunk_order, nested_subset, parse_hours, train_chunks

__all__ = ["Point", "plan", "check_task_split", "pretrain_config", "compare_config", "test_split_id", "hours_key"]

PRETRAIN_GROUPS = ("data", "model", "loss", "optim", "trainer")


@dataclass
class Point:
    """One point of a sweep."""

    index: int
    condition: str
    hours: float | str
    seed: int
    pretrain_shards: Path
    task_shards: Path
    daytime_only: bool
    overrides: list[str]
    task_only: bool = False  # this point also trains the task-only baseline of its (condition, seed)
    folder: Path = field(default=Path("."))

    @property
    def label(self) -> str:
        return ALL if self.hours == ALL else f"{self.hours:g}h"


def hours_key(h: float | str) -> float:
    return math.inf if h == ALL else float(h)


def conditions_of(cfg) -> dict:
    """Condition name -> its config; a sweep without conditions has one, ``default``.

    Raises
    ------
    ConfigError
        A name that is not a plain folder name.
    """
    conds = OmegaConf.to_container(cfg.conditions) or {"default": {}}
    for name, c in conds.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"conditions.{name}: a condition name must be letters, digits, '_', '-' or '.'")
        c["pretrain_shards"] = Path(c.get("pretrain_shards") or cfg.pretrain_shards)
        c["task_shards"] = Path(c.get("task_shards") or cfg.task_shards)
    return conds


def test_split_id(shards: str | Path) -> dict:
    """What identifies a shard set's test windows: its blocks, windows and tar checksums (from the manifest)."""
    m = read_manifest(shards)
    test = m.splits.get("test")
    return {
        "blocks": sorted(test.blocks if test else []),
        "n_windows": m.n_windows("test"),
        "sha256": [e.sha256 for e in m.entries("test")],
    }


def plan(cfg) -> list[Point]:
    """The sweep's points, after every check that needs no training.

    Raises
    ------
    ConfigError
        Empty grid or seeds, duplicate budgets, a bad condition, unknown finetune rows or fit metric.
    InputError
        Missing shards; a budget larger than a patient's training hours; conditions (or the task shards) of
        different patients; task shards whose test split differs from the one the sweep's finished points used.
    """
    if not cfg.hours:
        raise ConfigError("hours=[]: expected at least one budget (hours per patient, or 'all')")
    hours = [parse_hours(h) for h in cfg.hours]
    if len(set(hours)) != len(hours):
        raise ConfigError(f"hours={list(cfg.hours)}: a budget is listed twice")
    hours.sort(key=hours_key)
    seeds = [int(s) for s in cfg.seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={list(cfg.seeds)}: expected distinct seeds, at least one")
    bad = [r for r in cfg.finetune.rows if r not in FINETUNE_ROWS]
    if bad:
        raise ConfigError(f"finetune.rows: unknown {bad}; expected some of {list(FINETUNE_ROWS)}")
    if cfg.fit_metric != "zero_shot" and cfg.fit_metric not in cfg.finetune.rows:
        raise ConfigError(f"fit_metric={cfg.fit_metric}: not among finetune.rows={list(cfg.finetune.rows)}")
    out = Path(cfg.out)
    conds = conditions_of(cfg)
    patients: dict[str, set] = {}
    for name, c in conds.items():
        shards = c["pretrain_shards"]
        subjects = set(read_manifest(shards).subjects)
        task_subjects = set(read_manifest(c["task_shards"]).subjects)
        if not task_subjects <= subjects:
            raise InputError(
                f"conditions.{name}: pretraining shards {shards} hold subjects {sorted(subjects)}, the task shards "
                f"{c['task_shards']} {sorted(task_subjects)}; expected the task's patients among the pretraining ones"
            )
        patients[name] = subjects
        first = next(iter(patients))
        if patients[name] != patients[first]:
            raise InputError(
                f"conditions.{name}: pretrains on subjects {sorted(subjects)}, conditions.{first} on "
                f"{sorted(patients[first])}; every condition of a sweep must pretrain on the same patients"
            )
        numeric = [h for h in hours if h != ALL]
        if numeric:  # the largest budget must fit every patient (so every smaller one does)
            ordered = chunk_order(train_chunks(shards), cfg.order, cfg.order_seed, bool(c.get("daytime_only")))
            nested_subset(ordered, max(numeric), where=f"conditions.{name}: shards={shards}")
        pretrain_config(cfg, c.get("overrides") or [], shards, out, 0)  # bad keys fail now, not mid-sweep
    check_task_split(cfg, conds)
    points = []
    for name, c in conds.items():
        for seed in seeds:
            for k, h in enumerate(hours):
                p = Point(
                    index=len(points),
                    condition=name,
                    hours=h,
                    seed=seed,
                    pretrain_shards=c["pretrain_shards"],
                    task_shards=c["task_shards"],
                    daytime_only=bool(c.get("daytime_only")),
                    overrides=list(c.get("overrides") or []),
                    task_only=k == 0,
                )
                p.folder = out / "points" / name / p.label / f"seed{seed}"
                points.append(p)
    return points


def check_task_split(cfg, conds: dict) -> None:
    """Check every condition's task shards have the same test split, and that it is the one recorded in
    ``out/sweep.json`` by the sweep's earlier runs (or record it).

    Raises
    ------
    InputError
        Conditions whose task shards hold other test windows; task shards whose test split (blocks, windows,
        tar checksums) differs from the one the sweep's earlier points were scored on.
    """
    splits = {name: test_split_id(c["task_shards"]) for name, c in conds.items()}
    first = next(iter(splits))
    for name, split in splits.items():
        if (split["blocks"], split["n_windows"]) != (splits[first]["blocks"], splits[first]["n_windows"]):
            raise InputError(
                f"conditions.{name}: task shards {conds[name]['task_shards']} test on {split['n_windows']} windows of "
                f"blocks {split['blocks']}, conditions.{first} on {splits[first]['n_windows']} of "
                f"{splits[first]['blocks']}; expected one task split for the whole sweep"
            )
    path = Path(cfg.out) / "sweep.json"
    recorded = json.loads(path.read_text()).get("task_test_split", {}) if path.is_file() else {}
    for name, split in splits.items():
        old = recorded.get(name)
        if old is not None and old != split:
            raise InputError(
                f"task_shards={conds[name]['task_shards']}: its test split ({split['n_windows']} windows of "
                f"{len(split['blocks'])} blocks) differs from the one {path.parent} was scored on "
                f"({old['n_windows']} windows of {len(old['blocks'])} blocks); expected the same task split at every "
                "point (repacked task shards need a new out=)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"task_test_split": {**recorded, **splits}}, path, sort_keys=False)


def pretrain_config(cfg, overrides: list[str], shards: Path, out: Path, seed: int):
    """The ``ieegfm pretrain`` config of a point: the sweep's pretraining keys, then the condition's overrides.

    Raises
    ------
    ConfigError
        A bad override (names it), or a key the sweep cannot honour (``control``, ``data.resampled``).
    """
    base = {g: OmegaConf.to_container(cfg[g]) for g in PRETRAIN_GROUPS}
    base.update({"shards": str(shards), "out": str(out), "seed": seed, "resume": "last"})
    pcfg = load_config("pretrain", overrides=list(overrides), base=base)
    if pcfg.control != "none" or pcfg.data.resampled:
        raise ConfigError(
            "scale: control and data.resampled cannot be overridden (a subset of the hours is read in epoch mode)"
        )
    return pcfg


def compare_config(cfg, ckpt: Path, task_shards: Path):
    """The comparison keys (``ieegfm compare``) of a point's finetuning runs."""
    f = OmegaConf.to_container(cfg.finetune)
    f.pop("rows")
    return OmegaConf.merge(OmegaConf.structured(CompareConfig), {**f, "ckpt": str(ckpt), "shards": str(task_shards)})
