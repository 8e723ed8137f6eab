"""``ieegfm scale``: pretrain on nested subsets of the training hours, finetune every point, fit the scaling law.

A sweep is a grid of points (condition x hours x seed). Each point pretrains on a nested subset of each patient's
training hours (:mod:`ieegfm.shards.subset`: validation and test windows unchanged), then scores the checkpoint
zero-shot on the task shards and finetunes it (the ``ieegfm compare`` rows, same task splits at every point), so
that only the pretraining hours change. The smallest budget of each (condition, seed) also trains the task-only
baseline (the same architecture on the task alone; it does not depend on hours). A point's ``card.json`` is
written last: a rerun skips points whose card matches their config, and an interrupted pretraining resumes from
its ``last.ckpt``, so a killed sweep loses at most the steps since that point's last checkpoint. Everything that
can be checked is checked before any training: the hours the shards hold, the patients of every shard set, the
task split the finished points were scored on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.config import CompareConfig, load_config
from ieegfm.config.enums import FINETUNE_ROWS
from ieegfm.data import read_manifest
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.lock import exclusive_output, write_errors_as_output_error
from ieegfm.io.manifest import write_json_atomic
from ieegfm.shards.subset import ALL, chunk_order, nested_subset, parse_hours, subset_view, train_chunks

logger = logging.getLogger(__name__)

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
    return {
        "blocks": sorted(m.get("splits", {}).get("test", {}).get("blocks", [])),
        "n_windows": int(sum(e["n_windows"] for e in m["shards"].get("test", []))),
        "sha256": [e.get("sha256") for e in m["shards"].get("test", [])],
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
        subjects = set(read_manifest(shards)["subjects"])
        task_subjects = set(read_manifest(c["task_shards"])["subjects"])
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


def _identity(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_point(cfg, p: Point) -> dict:
    """Pretrain, score and finetune one point; write and return its ``card.json`` (reused when it matches).

    Returns
    -------
    card : dict
        ``condition``, ``hours`` (the budget), ``hours_per_subject`` (kept), ``seed``, ``compute`` (policy,
        ``max_steps``, ``train_windows``), ``rows`` (``pretrain_test``, ``zero_shot``, each finetuned row and, at
        the smallest budget, ``task_only``: summary metrics and per-window relative ranks), ``identity``,
        ``wall_s``.
    """
    from ieegfm.evaluation.evaluate import score_split
    from ieegfm.finetune.tune import tune_condition
    from ieegfm.pretrain.run import pretrain

    tic = time.perf_counter()
    subset = subset_view(
        p.pretrain_shards,
        Path(cfg.out) / "subsets" / p.condition / p.label,
        p.hours,
        cfg.order,
        cfg.order_seed,
        p.daytime_only,
    )
    manifest = read_manifest(subset)
    pcfg = pretrain_config(cfg, p.overrides, subset, p.folder / "pretrain", p.seed)
    train_windows = int(manifest["splits"]["train"]["n_windows"])
    if cfg.compute == "epochs":
        world = int(pcfg.trainer.devices if isinstance(pcfg.trainer.devices, int) else 1) * pcfg.trainer.num_nodes
        pcfg.trainer.max_steps = max(1, math.ceil(cfg.epochs * train_windows / (pcfg.data.batch_size * world)))
    compute = {
        "policy": cfg.compute,
        "epochs": cfg.epochs if cfg.compute == "epochs" else None,
        "max_steps": int(pcfg.trainer.max_steps),
        "train_windows": train_windows,
        "epochs_done": int(pcfg.trainer.max_steps) * pcfg.data.batch_size / max(train_windows, 1),
    }
    identity = _identity(
        {
            "pretrain": {k: v for k, v in OmegaConf.to_container(pcfg).items() if k not in ("out", "resume")},
            "subset": manifest["subset"],
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
        "hours_per_subject": manifest["subset"]["hours_per_subject"],
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


def write_sbatch(cfg, points: list[Point]) -> Path:
    """``out/scale.sbatch``: one SLURM array task per point (``point=$SLURM_ARRAY_TASK_ID``), the pretraining
    SIGTERM checkpoint and requeue of ``tools/slurm/pretrain.sbatch``; then ``ieegfm scale ... collect=true``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.yaml"
    OmegaConf.save(cfg, spec, resolve=True)
    script = out / "scale.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        f"# ieegfm scale: {len(points)} points (condition x hours x seed), one array task each.\n"
        f"# Submit: sbatch {script}; when all are done: ieegfm scale --config {spec} collect=true\n"
        "# Preemption: SIGTERM saves the point's last.ckpt; the requeued task resumes it (finished points are skipped).\n"
        "#SBATCH --job-name=ieegfm-scale\n"
        f"#SBATCH --array=0-{len(points) - 1}\n"
        "#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=1\n#SBATCH --cpus-per-task=8\n"
        "#SBATCH --time=24:00:00\n#SBATCH --signal=TERM@120\n#SBATCH --requeue\n"
        f"#SBATCH --output={out}/slurm-%A_%a.out\n\n"
        "set -euo pipefail\nexport OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-8}\n"
        f"srun python -m ieegfm scale --config {shlex.quote(str(spec))} launcher=local collect=false "
        'point="${SLURM_ARRAY_TASK_ID}" "$@"\n'
    )
    return script


def scale(cfg) -> dict | Path:
    """Run (or collect) a sweep; see the module docstring.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.ScaleConfig`.

    Returns
    -------
    fit : dict or Path
        ``fit.json``'s content after a local run or ``collect=true``; the sbatch script for ``launcher=slurm``;
        the point's card path for ``point=N``.

    Raises
    ------
    ConfigError, InputError
        See :func:`plan`; ``point`` outside the grid; ``collect`` before any point finished.
    """
    from ieegfm.analysis.scale_outputs import collect

    points = plan(cfg)
    if cfg.collect:
        return collect(cfg, points)
    if cfg.point is not None:
        if not 0 <= cfg.point < len(points):
            raise ConfigError(f"point={cfg.point}: the sweep has points 0..{len(points) - 1}")
        run_point(cfg, points[cfg.point])
        return points[cfg.point].folder / "card.json"
    with (
        write_errors_as_output_error(cfg.out),
        exclusive_output(cfg.out, "scale"),
    ):  # one sweep runner per folder (array tasks lock their points' runs)
        return _run_local(cfg, points)


def _run_local(cfg, points: list[Point]) -> dict | Path:
    """Every point in sequence, then the fit (or the SLURM script), holding the sweep folder's lock."""
    from ieegfm.analysis.scale_outputs import collect

    OmegaConf.save(cfg, Path(cfg.out) / "spec.yaml", resolve=True)  # the config that made the sweep
    if cfg.launcher == "slurm":
        script = write_sbatch(cfg, points)
        logger.info("scale: %d points; submit with `sbatch %s`", len(points), script)
        return script
    tic = time.perf_counter()
    ran = 0
    for k, p in enumerate(points, start=1):
        t = time.perf_counter()
        card = run_point(cfg, p)
        fresh = time.perf_counter() - t > 1.0
        ran += fresh
        logger.info(
            "scale: %d/%d points done (%s, %s, seed %d: finetuned rank %s; %s)",
            k,
            len(points),
            p.condition,
            p.label,
            p.seed,
            ", ".join(f"{r} {card['rows'][r]['test']['mean_relative_rank']:.3f}" for r in cfg.finetune.rows),
            f"{card['wall_s']:.0f} s, {(time.perf_counter() - tic) / max(ran, 1):.0f} s per point run"
            if fresh
            else "already done, skipped",
        )
    return collect(cfg, points)
