"""``ieegfm embed``: every window's embedding with its labels and times; the arrays give back evaluate's ranks."""

import datetime as dt
import json

import numpy as np
import pytest
import torch

from ieegfm.__main__ import main
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
    assert main(["embed", f"ckpt={patient['ckpt']}", f"shards={shards}", "splits=[nope]", f"out={tmp_path / 'x'}"]) == 2
    (out / "windows.tsv").write_text("\t".join(COLUMNS) + "\n")
    with pytest.raises(InputError, match="windows.tsv has 0 rows for"):
        read_embeddings(out)
