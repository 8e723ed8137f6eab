"""Lower layers never import higher ones (open_clip / MNE test_import_nesting).

The model library (encoders, heads, losses, signal processing, the checkpoint contract) never imports the trainer
side; evaluation never imports training code (pretraining or finetuning LightningModules, runners).
"""

import subprocess
import sys

import pytest

TRAINER_SIDE = ("lightning", "webdataset", "ieegfm.data", "ieegfm.pretrain", "ieegfm.finetune", "ieegfm.shards")
TRAINING = ("ieegfm.pretrain", "ieegfm.finetune", "ieegfm.__main__")


def _imported(module: str, forbidden: tuple[str, ...]) -> str:
    code = (
        f"import sys, {module}; bad = [m for m in sys.modules "
        f"if any(m == f or m.startswith(f + '.') for f in {forbidden!r})]; print(','.join(bad))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(
    "module",
    [
        "ieegfm.models",
        "ieegfm.heads",
        "ieegfm.losses",
        "ieegfm.preprocess",
        "ieegfm.checkpoint",
        "ieegfm.evaluation.retrieval",
        "ieegfm.evaluation.stats",
    ],
)
def test_library_does_not_import_trainer_side(module):
    assert _imported(module, (*TRAINER_SIDE, "ieegfm.__main__")) == "", module


@pytest.mark.parametrize("module", ["ieegfm.evaluation", "ieegfm.evaluation.evaluate"])
def test_evaluation_does_not_import_training(module):
    assert _imported(module, TRAINING) == "", module
