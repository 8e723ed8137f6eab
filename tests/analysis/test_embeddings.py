"""``ieegfm embed``: every window's embedding with its labels and times; the arrays give back evaluate's ranks."""

import datetime as dt
import json

import numpy as np
import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.analysis.drift import day_decoding
from ieegfm.analysis.embeddings import COLUMNS, read_embeddings
from ieegfm.errors import InputError
from ieegfm.evaluation.retrieval import retrieval_metrics


def test_embed_writes_every_window_with_its_times_and_reproduces_evaluate(patient, tmp_path, capsys):
    out, shards = tmp_path / "emb", patient["root"] / "amb"
    assert main(["embed", f"ckpt={patient['ckpt']}", f"shards={shards}", f"out={out}"]) == 0
    x, rows = read_embeddings(out)
    info = json.loads((out / "embed.json").read_text())
    manifest = json.loads((shards / "manifest.json").read_text())
    assert x.dtype == np.float32 and x.shape[0] == info["n_windows"] == len(rows) == sum(info["splits"].values())
    assert list(rows[0]) == list(COLUMNS) and [int(r["index"]) for r in rows] == list(range(len(rows)))
    assert {r["split"] for r in rows} == {"train", "val", "test"} and {r["subject"] for r in rows} == {"sim01"}
    for r in rows[:: max(1, len(rows) // 7)]:  # a window's start = its block's start + tmin, on both clocks
        block = dt.datetime.fromisoformat(manifest["blocks"][r["block"]]["start_time"])
        t = dt.datetime.fromisoformat(r["start_time"])
        assert abs((t - block).total_seconds() - float(r["tmin"])) < 1e-3
        assert dt.datetime.fromisoformat(r["local_time"]) == t  # same instant (UTC site)
        assert r["key"].startswith(r["block"])
    y = np.load(out / "targets.npy")
    assert y.shape == x.shape
    test = np.array([r["split"] == "test" for r in rows])
    mine = retrieval_metrics(torch.from_numpy(np.asarray(x[test])), torch.from_numpy(y[test]))
    capsys.readouterr()
    assert (
        main(["evaluate", f"ckpt={patient['ckpt']}", f"shards={shards}", "split=test", f"out={tmp_path / 'e.json'}"])
        == 0
    )
    theirs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert mine["n_candidates"] == theirs["n_candidates"]
    assert mine["mean_relative_rank"] == pytest.approx(theirs["mean_relative_rank"], abs=1e-6)
    # drift reads the folder instead of embedding again (one day here: the table's days relabelled by block)
    blocks = sorted({r["block"] for r in rows})
    day = np.array([blocks.index(r["block"]) % 2 for r in rows])
    with open(out / "windows.tsv", "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r, d in zip(rows, day):
            f.write("\t".join(str(d) if c == "day" else r[c] for c in COLUMNS) + "\n")
    assert main(["drift", f"embeddings={out}", f"out={tmp_path / 'drift'}", "n_perm=5"]) == 0
    result = json.loads((tmp_path / "drift" / "drift.json").read_text())
    block = np.array([r["block"] for r in rows])
    expected = day_decoding(np.asarray(x), day, block, np.zeros(len(rows), dtype=int), n_perm=5, seed=0)
    assert result["day_r"] == pytest.approx(expected["r"]) and result["embeddings"] == str(out)
    assert result["retrieval"]["test"]["mean_relative_rank"] == pytest.approx(mine["mean_relative_rank"])
    assert main(["drift", f"out={tmp_path / 'd2'}"]) == 2
    assert "needs ckpt= and shards=, or embeddings=DIR" in capsys.readouterr().err
    assert main(["embed", f"ckpt={patient['ckpt']}", f"shards={shards}", "splits=[nope]", f"out={tmp_path / 'x'}"]) == 2
    (out / "windows.tsv").write_text("\t".join(COLUMNS) + "\n")
    with pytest.raises(InputError, match="windows.tsv has 0 rows for"):
        read_embeddings(out)
