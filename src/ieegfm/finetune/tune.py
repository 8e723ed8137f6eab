"""Each trained condition at its own learning rates, chosen on the validation split (``compare``, ``scale``).

A comparison between conditions is only as fair as the tuning of each: a learning rate that suits a pretrained
encoder (a tenth of the head's, to protect its weights) handicaps a randomly initialised one. So every trained
condition runs the same grid, with the same step budget and early-stopping rule, and keeps the point whose
best validation mean relative rank is lowest:

- ``lr`` over ``lr_grid`` for every condition;
- ``encoder_lr_scale`` over ``encoder_lr_scales`` for a pretrained, unfrozen encoder only; a scratch encoder always
  trains at 1.0 (nothing to protect), a frozen one has no learning rate.

The choice reads the validation split only: grid runs are trained with ``finetune(..., score_test=False)`` and the
test split is scored afterwards, for the chosen point's runs alone. The chosen point's selection runs are its
first seeds' runs (no run is trained twice).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ieegfm.config import FinetuneConfig
from ieegfm.config.enums import CONDITIONS
from ieegfm.errors import ConfigError
from ieegfm.finetune.base import resolve_encoder_lr_scale
from ieegfm.finetune.run import finetune, score_test_split

logger = logging.getLogger(__name__)

#: What chooses a grid point.
CRITERION = "lowest best-checkpoint val mean relative rank (mean over the selection seeds)"
#: Keys of a comparison or sweep config that are not the finetuning runs' own.
_NOT_RUN_KEYS = (
    "out",
    "seeds",
    "conditions",
    "lr_grid",
    "encoder_lr_scales",
    "select_seeds",
    "rows",
    "task_fractions",
)


@dataclass(frozen=True)
class GridPoint:
    """One learning-rate setting of a condition: the head's ``lr`` and the encoder's scale (``None``: frozen)."""

    lr: float
    encoder_lr_scale: float | None

    @property
    def label(self) -> str:
        """Folder name of the point's runs, e.g. ``lr0.001-scale1``."""
        return f"lr{self.lr:g}" + ("" if self.encoder_lr_scale is None else f"-scale{self.encoder_lr_scale:g}")


def check_grid(cfg) -> None:
    """Check the grid keys of a comparison or sweep config.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.LrGridConfig` keys (``lr_grid``, ``encoder_lr_scales``, ``select_seeds``).

    Raises
    ------
    ConfigError
        An empty list, a value that is not positive, a repeated value, ``select_seeds`` below 1.
    """
    for key in ("lr_grid", "encoder_lr_scales"):
        values = [float(v) for v in cfg[key]]
        if not values or any(not v > 0 for v in values) or len(set(values)) != len(values):
            raise ConfigError(f"{key}={list(cfg[key])}: expected distinct positive values (at least one)")
    if cfg.select_seeds < 1:
        raise ConfigError(f"select_seeds={cfg.select_seeds}: expected at least 1")


def grid_points(condition: str, lr_grid, encoder_lr_scales) -> list[GridPoint]:
    """The grid of a trained condition (see the module docstring).

    Parameters
    ----------
    condition : str
        A trained key of :data:`ieegfm.config.enums.CONDITIONS`.
    lr_grid, encoder_lr_scales : sequence of float
        Learning rates of the head; encoder scales tried with a pretrained, unfrozen encoder.

    Returns
    -------
    points : list of GridPoint
        In grid order (learning rate first), which also breaks ties.
    """
    init, freeze = CONDITIONS[condition]
    if freeze == "encoder":
        scales = [None]
    elif init == "scratch":
        scales = [resolve_encoder_lr_scale(init, freeze)]  # 1.0: a scratch encoder always trains at the full rate
    else:
        scales = [float(s) for s in encoder_lr_scales]
    return [GridPoint(float(lr), s) for lr in lr_grid for s in scales]


def run_config(cfg, condition: str, point: GridPoint, seed: int, out: Path):
    """The ``ieegfm finetune`` config of one condition, grid point and seed (the comparison's shared keys)."""
    init, freeze = CONDITIONS[condition]
    shared = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in _NOT_RUN_KEYS}
    run = OmegaConf.merge(OmegaConf.structured(FinetuneConfig), shared)
    run.out, run.init, run.freeze, run.seed = str(out), init, freeze, seed
    run.optim.lr, run.optim.encoder_lr_scale = point.lr, point.encoder_lr_scale
    return run


def finished_run(run: Path, run_cfg) -> bool:
    """A finished run of exactly this config (a rerun of the comparison reuses it)."""
    done = run / "metrics.json"
    if not done.is_file() or not (run / "model.ckpt").is_file() or not (run / "config.yaml").is_file():
        return False
    return OmegaConf.to_container(OmegaConf.load(run / "config.yaml")) == OmegaConf.to_container(run_cfg, resolve=True)


def train_run(cfg, condition: str, point: GridPoint, seed: int, run: Path) -> dict:
    """Train one run on the task's train split, selected on validation, without reading the test split (reused
    when it finished with the same config).

    Returns
    -------
    metrics : dict
        The run's ``metrics.json`` (``best_val_mean_relative_rank``, steps; ``test`` only once scored).
    """
    run_cfg = run_config(cfg, condition, point, seed, run)
    if finished_run(run, run_cfg):
        logger.info("%s %s seed %d already done (%s), reused", condition, point.label, seed, run)
    else:
        finetune(run_cfg, score_test=False)
    return json.loads((run / "metrics.json").read_text())


def tune_condition(cfg, condition: str, seeds: list[int], folder: Path) -> dict:
    """Choose a trained condition's learning rates on validation, then train and test it over ``seeds``.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.CompareConfig` (or the sweep's equivalent): the shared finetuning keys and the grid
        (``lr_grid``, ``encoder_lr_scales``, ``select_seeds``).
    condition : str
        A trained key of :data:`ieegfm.config.enums.CONDITIONS`.
    seeds : list of int
        Seeds of the reported runs; the first ``select_seeds`` of them also choose the grid point.
    folder : Path
        Runs go to ``folder/<point label>/seed<k>/``.

    Returns
    -------
    tuned : dict
        ``selection`` (``criterion``, ``seeds``, ``grid``: each point's ``lr``, ``encoder_lr_scale``,
        ``val_mean_relative_rank`` and per-seed values, ``chosen``: the point's ``lr`` and ``encoder_lr_scale``,
        ``lr_at_grid_edge``: ``'lowest'``/``'highest'`` when the chosen lr ends a grid of several, else ``None``)
        and ``runs``: per seed, ``seed``, ``run`` and the run's metrics (``test``, ``per_window``, ...).

    Raises
    ------
    ConfigError
        A bad grid (:func:`check_grid`), no seed, a condition that is not trained.
    """
    check_grid(cfg)
    if CONDITIONS.get(condition) is None:
        trained = [c for c, how in CONDITIONS.items() if how]
        raise ConfigError(f"condition={condition!r}: expected a trained one of {trained}")
    if not seeds:
        raise ConfigError(f"{condition}: no seeds to run")
    points = grid_points(condition, cfg.lr_grid, cfg.encoder_lr_scales)
    chooser = list(seeds[: cfg.select_seeds])
    grid = []
    for point in points:
        vals = [train_run(cfg, condition, point, s, folder / point.label / f"seed{s}") for s in chooser]
        ranks = [m["best_val_mean_relative_rank"] for m in vals]
        known = [r for r in ranks if r is not None]
        grid.append(
            {
                "lr": point.lr,
                "encoder_lr_scale": point.encoder_lr_scale,
                "val_mean_relative_rank": float(np.mean(known)) if known else None,
                "val_by_seed": ranks,
            }
        )
    scores = [g["val_mean_relative_rank"] if g["val_mean_relative_rank"] is not None else np.inf for g in grid]
    chosen = points[int(np.argmin(scores))]  # first of equals: grid order breaks ties
    for g, p in zip(grid, points):
        g["chosen"] = p == chosen
    logger.info(
        "%s: chose %s on validation (val mean relative rank: %s)",
        condition,
        chosen.label,
        ", ".join(f"{p.label} {score:.3f}" for p, score in zip(points, scores)),
    )
    lrs = sorted({p.lr for p in points})
    edge = None if len(lrs) < 2 else "lowest" if chosen.lr == lrs[0] else "highest" if chosen.lr == lrs[-1] else None
    if edge:
        logger.warning(
            "%s: the chosen lr %g is the %s of lr_grid=%s; the best may lie beyond it (widen the grid)",
            condition,
            chosen.lr,
            edge,
            lrs,
        )
    folders = {s: folder / chosen.label / f"seed{s}" for s in seeds}
    for s, run in folders.items():  # the chosen point's selection runs are reused
        train_run(cfg, condition, chosen, s, run)
    runs = []
    for s, run in folders.items():  # every run trained: only now is the test split read
        metrics = score_test_split(run, run_config(cfg, condition, chosen, s, run))
        runs.append({"seed": s, "run": str(run), **metrics})
    selection = {
        "criterion": CRITERION,
        "seeds": chooser,
        "grid": grid,
        "chosen": {"lr": chosen.lr, "encoder_lr_scale": chosen.encoder_lr_scale},
        "lr_at_grid_edge": edge,
    }
    return {"selection": selection, "runs": runs}
