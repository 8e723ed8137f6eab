"""The SLURM launcher of a sweep: one array task per point, then a collecting run."""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import OmegaConf

from ieegfm.analysis.scale.plan import Point

__all__ = ["write_sbatch"]


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
        "# Preemption: SIGTERM saves the point's last.ckpt; the requeued task resumes it (finished points are"
        " skipped).\n"
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
