"""A sweep's plan: its points (condition x patients x hours x seed) and each point's configs, after every check
that needs no training (the hours the shards hold, the patients of every shard set, the task split the finished
points used).

The patients axis (``patients=[1,2,3]``) pretrains on nested sets of patients, the first N of ``patient_order``
(the task's patients always first: every point finetunes and scores them); ``hours_per=patient`` gives each
patient of a point the grid's hours (more patients, more data), ``hours_per=total`` splits the grid's hours evenly
among them (more patients at the same data), so that "more patients" and "more hours" can be told apart.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.config import CompareConfig, load_config
from ieegfm.config.enums import FINETUNE_ROWS, HOURS_PER
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.manifest import read_manifest, write_json_atomic
from ieegfm.shards.subset import ALL, chunk_order, nested_subset, parse_hours, train_chunks

__all__ = [
    "Point",
    "plan",
    "patient_sets",
    "check_task_split",
    "pretrain_config",
    "compare_config",
    "test_split_id",
    "hours_key",
]

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
    patients: tuple[str, ...] | None = None  # the pretraining patients of a point of the patients axis
    subject_hours: float | str = ALL  # the budget of each pretraining patient (hours, or 'all')

    @property
    def label(self) -> str:
        return ALL if self.hours == ALL else f"{self.hours:g}h"

    @property
    def group(self) -> str:
        """What a fit over hours is drawn through: the condition, and on the patients axis its number of patients
        (``default/2p``)."""
        return self.condition if self.patients is None else f"{self.condition}/{len(self.patients)}p"


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


def patient_sets(cfg, subjects: set[str], task_subjects: set[str]) -> list[tuple[str, ...]] | None:
    """The nested sets of pretraining patients of the patients axis (None: the sweep has none).

    Raises
    ------
    ConfigError
        ``patients`` not distinct, or outside [the task's patients, the patients of ``patient_order``];
        ``patient_order`` with unknown or repeated labels, or not starting with the task's patients.
    """
    if cfg.hours_per not in HOURS_PER:
        raise ConfigError(f"hours_per={cfg.hours_per!r}: expected one of {list(HOURS_PER)}")
    if not cfg.patients:
        if cfg.patient_order:
            raise ConfigError("patient_order: given without patients=[...]; expected the numbers of patients too")
        return None
    order = [str(s) for s in cfg.patient_order] or sorted(task_subjects) + sorted(subjects - task_subjects)
    unknown = [s for s in order if s not in subjects]
    if unknown or len(set(order)) != len(order):
        raise ConfigError(
            f"patient_order={order}: expected distinct labels among the pretraining patients {sorted(subjects)}"
        )
    first = len(task_subjects)
    if set(order[:first]) != task_subjects:
        raise ConfigError(
            f"patient_order={order}: expected the task's patients {sorted(task_subjects)} first (every point "
            "finetunes and scores them)"
        )
    try:
        ns = sorted(int(n) for n in cfg.patients)
    except (TypeError, ValueError):
        raise ConfigError(f"patients={list(cfg.patients)}: expected numbers of patients") from None
    if len(set(ns)) != len(ns) or ns[0] < first or ns[-1] > len(order):
        raise ConfigError(
            f"patients={list(cfg.patients)}: expected distinct numbers from {first} (the task's patients) to "
            f"{len(order)} (the patients of patient_order)"
        )
    return [tuple(order[:n]) for n in ns]


def _subject_budget(hours: float | str, n_patients: int, hours_per: str) -> float | str:
    """Hours of each of a point's ``n_patients`` patients."""
    return hours if hours == ALL or hours_per == "patient" else hours / n_patients


def plan(cfg) -> list[Point]:
    """The sweep's points, after every check that needs no training.

    Raises
    ------
    ConfigError
        Empty grid or seeds, duplicate budgets, a bad condition, unknown finetune rows or fit metric; a bad
        patients axis (:func:`patient_sets`).
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
    sets = None
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
        sets = patient_sets(cfg, subjects, task_subjects)
        numeric = [h for h in hours if h != ALL]
        if numeric:  # the largest budget must fit every patient (so every smaller one does)
            ordered = chunk_order(train_chunks(shards), cfg.order, cfg.order_seed, bool(c.get("daytime_only")))
            for group in sets or [tuple(sorted(subjects))]:
                budget = _subject_budget(max(numeric), len(group), cfg.hours_per)
                where = f"conditions.{name}: shards={shards}"
                nested_subset({s: ordered.get(s, []) for s in group}, budget, where=where)
        pretrain_config(cfg, c.get("overrides") or [], shards, out, 0)  # bad keys fail now, not mid-sweep
    check_task_split(cfg, conds)
    n_all = len(next(iter(patients.values())))
    points = []
    for name, c in conds.items():
        for seed in seeds:
            k = 0
            for group in sets or [None]:
                for h in hours:
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
                        patients=group,
                        subject_hours=_subject_budget(h, len(group) if group else n_all, cfg.hours_per),
                    )
                    k += 1
                    p.folder = out / "points" / name
                    if group is not None:
                        p.folder = p.folder / f"{len(group)}p"
                    p.folder = p.folder / p.label / f"seed{seed}"
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
