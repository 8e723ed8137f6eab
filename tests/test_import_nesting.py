"""The model library never imports the trainer side (open_clip / MNE test_import_nesting)."""

import subprocess
import sys

import pytest

FORBIDDEN = ("lightning", "webdataset", "ieegfm.data", "ieegfm.pretrain", "ieegfm.shards", "ieegfm.__main__")


@pytest.mark.parametrize(
    "module", ["ieegfm.models", "ieegfm.losses", "ieegfm.preprocess", "ieegfm.evaluation.retrieval"]
)
def test_library_does_not_import_trainer_side(module):
    code = (
        f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] == 'lightning' "
        f"or any(m == f or m.startswith(f + '.') for f in {FORBIDDEN!r})]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imports {out}"
