"""The soak run (marker ``soak``, deselected by default; ``make soak``): a 24-h simulated recording packed with
``n_jobs=2`` within 1.2x the peak memory of a 1-h pack, then a DDP (2-process gloo) pretraining of 600 steps whose
memory is flat after warm-up. Figures: ``tools/soak.py`` (printed; README)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "soak.py"


@pytest.mark.soak
def test_soak_24h_pack_and_ddp_pretraining(tmp_path):
    out = tmp_path / "soak"
    cmd = [
        sys.executable,
        str(TOOL),
        "--out",
        str(out),
        "--hours",
        "24",
        "--steps",
        "600",
        "--json",
        str(out / "f.json"),
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=3600)
    figures = json.loads((out / "f.json").read_text())
    print(json.dumps(figures, indent=1))
    assert figures["pack_full"]["packed_hours"] > 20 * figures["pack_1h"]["packed_hours"]
    assert figures["pack_peak_ratio"] <= 1.2
    assert figures["train"]["steps"] == 600 and len(figures["train"]["ranks"]) == 2
    for rank in figures["train"]["ranks"]:
        assert rank["growth_pct"] < 5.0, rank  # flat after warm-up (medians of the 3rd vs 4th quarter)
