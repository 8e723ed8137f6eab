"""``ieegfm scale``: plan the sweep, run its points here (or write the SLURM script), collect the fit."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.analysis.scale.outputs import collect
from ieegfm.analysis.scale.plan import Point, plan
from ieegfm.analysis.scale.point import run_point
from ieegfm.analysis.scale.slurm import write_sbatch
from ieegfm.errors import ConfigError
from ieegfm.io.lock import exclusive_output, write_errors_as_output_error

__all__ = ["scale"]

logger = logging.getLogger(__name__)


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
