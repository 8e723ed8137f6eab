"""More patients or more hours? Two ``ieegfm scale`` sweeps over nested sets of pretraining patients on the simulator.

Usage: ``python tools/patients_study.py --out runs/patients_study [--hours 0.75] [--seeds 0,1,2] [--epochs 40]
[--patience 3] [--shared]``

Three simulated patients (``ieegfm simulate subjects=3``: implants of 4, 3 and 5 shafts, responses of the same
kinds), packed together; sim01's task session is the target. Sweep ``per_patient``: ``patients=[1,2,3]`` at
``hours=[0.1,0.2,0.4]`` per patient (more patients bring more data); sweep ``total``: the same sets at
``hours=[0.2,0.4]`` in total, split evenly (more patients at the same data). Every point is pretrained with
``compute=epochs`` and early stopping on validation, so that a small subset is not trained as long as a large
one, then probed on sim01's task (``finetuned_frozen``, learning rate chosen on validation) against the
task-only baseline. Prints both sweeps' ``scale.md``; the steps are the public commands a user runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ieegfm.__main__ import main as ieegfm

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
TINY = ["model.hidden=32", "model.projected_chans=16", "model.depth=2"]


def run(*args: str) -> None:
    """One ieegfm command; a failure stops the study."""
    if ieegfm(list(args)) != 0:
        raise SystemExit(f"ieegfm {' '.join(args)} failed")


def build(root: Path, hours: float, shared: bool) -> tuple[Path, Path]:
    """Simulate three patients and pack them: the ambient pack (all three), sim01's task pack."""
    sim = ["days=1", "block_minutes=5", "task_minutes=16", "task_blocks=8", f"shared_responses={shared}"]
    if not (root / "sim" / "recordings.tsv").is_file():
        run("simulate", f"out={root / 'sim'}", "subjects=3", f"hours={hours}", "seed=0", *sim)
    amb, task = root / "amb", root / "task"
    if not (amb / "manifest.json").is_file():
        run("pack", f"recordings={root / 'sim' / 'recordings.tsv'}", f"out={amb}", "chunk_s=30")
    if not (task / "manifest.json").is_file():
        run("pack", f"recordings={root / 'sim' / 'recordings_task.tsv'}", "subjects=[sim01]", f"out={task}",
            f"channels_from={amb}", "split.val=0.25", "split.test=0.25")  # fmt: skip
    return amb, task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/patients_study")
    p.add_argument("--hours", type=float, default=0.75, help="ambient hours simulated per patient")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--epochs", type=float, default=40.0, help="compute=epochs: passes over each point's subset")
    p.add_argument("--patience", type=int, default=3, help="trainer.early_stopping_patience (validations)")
    p.add_argument("--shared", action="store_true", help="simulate shared_responses=true (an anatomical map)")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    root = Path(a.out)
    amb, task = build(root, a.hours, a.shared)
    common = [f"pretrain_shards={amb}", f"task_shards={task}", f"seeds=[{a.seeds}]", "patients=[1,2,3]",
              "compute=epochs", f"epochs={a.epochs}", f"trainer.early_stopping_patience={a.patience}",
              "trainer.val_check_interval=20", "data.batch_size=32", "optim.lr=2e-3", *TINY, *FAST,
              "finetune.rows=[finetuned_frozen]", "finetune.lr_grid=[1e-3,3e-3]", "finetune.trainer.max_steps=120",
              "finetune.trainer.val_check_interval=20", "finetune.trainer.enable_progress_bar=false", "n_boot=1000"]  # fmt: skip
    sweeps = {
        "per_patient": ["hours=[0.1,0.2,0.4]", "hours_per=patient"],
        "total": ["hours=[0.2,0.4]", "hours_per=total"],
    }
    tag = f"-e{a.epochs:g}-p{a.patience}"  # sweep folders per compute (the data are shared)
    for name, grid in sweeps.items():
        run("scale", f"out={root / (name + tag)}", *common, *grid)
    for name in sweeps:
        print(f"## {name}\n")
        print((root / (name + tag) / "scale.md").read_text())


if __name__ == "__main__":
    main()
