"""ieegfm import-n2s: the Neuro2Semantic pickle format, read safely, packed as task shards the text head trains on."""

import json
import pickle

import numpy as np
import pytest
from recording_fixtures import write_n2s_pickle

from ieegfm.__main__ import main
from ieegfm.checkpoint import load_checkpoint
from ieegfm.io.manifest import read_manifest
from ieegfm.io.n2s import read_n2s
from ieegfm.shards.import_n2s import split_trials
from ieegfm.text.sentences import load_sentences

SMALL_ENCODER = ["window_s=1", "model.hidden=32", "model.depth=2", "model.projected_chans=16"]


@pytest.fixture(scope="module")
def n2s(tmp_path_factory):
    return write_n2s_pickle(tmp_path_factory.mktemp("n2s") / "n2s.pkl")


def test_reader_follows_the_format(n2s):
    raw = pickle.loads(n2s.read_bytes())
    rec = read_n2s(n2s, 50.0)
    t0, r0 = rec.trials[0], raw["trials"][0]
    # significan_elecs keeps electrodes 0-4 of 6; all six bands, band-major channel order
    assert rec.n_electrodes == 5 and len(rec.ch_names) == 30 and rec.bands[0] == "delta"
    assert rec.ch_names[:2] == ["S1-e000-delta", "S1-e001-delta"] and rec.ch_names[-1] == "S2-e004-highgamma"
    np.testing.assert_array_equal(t0.data[-5:], r0["highgamma"][:, :5].T.astype(np.float32))
    s = r0["sentence_labels"][2]
    assert t0.sentences[2] == (s["indices"][0] / 50.0, len(s["indices"]) / 50.0, s["sentence"])
    first_word = s["sentence"].split()[0]
    assert (s["indices"][0] / 50.0, first_word) in {(on, w) for on, _, w in t0.words}
    only = read_n2s(n2s, 50.0, bands=["highgamma"], subjects=["S2"], significant_only=False)
    assert only.ch_names == ["S2-e003-highgamma", "S2-e004-highgamma", "S2-e005-highgamma"]


def test_split_by_trial_in_file_order():
    assert split_trials(12, 0.15, 0.15) == ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    assert split_trials(3, 0.0, 0.0) == ["train", "val", "test"]


def test_imported_shards_hold_the_sentences_and_the_text_head_learns_them(n2s, tmp_path):
    out = tmp_path / "shards"
    assert main(["import-n2s", str(n2s), "sfreq=50", f"out={out}", *SMALL_ENCODER]) == 0
    manifest = read_manifest(out)
    assert manifest.n_features == 0 and manifest.subjects["n2s"].n_chans == 30
    assert [b["split"] for b in manifest.blocks.values()].count("test") == 2
    sentences = load_sentences(out, manifest, {"n2s": 0}, 30, 50, tail_s=0.0)
    raw = pickle.loads(n2s.read_bytes())
    test_texts = [s["sentence"] for t in raw["trials"][-2:] for s in t["sentence_labels"]]
    assert [it.text for it in sentences.items["test"]] == test_texts
    item, s = sentences.items["test"][0], raw["trials"][-2]["sentence_labels"][0]
    assert item.n_samples == len(s["indices"])  # onset and duration on the trial's clock, to the sample
    _, contract = load_checkpoint(out / "encoder_init.ckpt")
    assert contract.kind == "init" and "never trained" in contract.training["objective"]

    ft = ["finetune", "head=text_embedding", f"ckpt={out / 'encoder_init.ckpt'}", "init=scratch", "freeze=none",
          "trainer.max_steps=150", "trainer.val_check_interval=10", "trainer.patience=5",
          "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]  # fmt: skip
    assert main([*ft, f"shards={out}", f"out={tmp_path / 'run'}"]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["n_sentences"] == 16 and m["mean_relative_rank"] < m["permuted_mean_relative_rank"] - 0.1
    assert m["p_value"] < 0.05

    # the same file without the semantic signal: chance (the import leaks nothing through timing or length)
    plain = write_n2s_pickle(tmp_path / "plain.pkl", semantic=False)
    assert main(["import-n2s", f"file={plain}", "sfreq=50", f"out={tmp_path / 'plain'}", *SMALL_ENCODER]) == 0
    assert main([*ft, f"shards={tmp_path / 'plain'}", f"out={tmp_path / 'run_plain'}"]) == 0
    c = json.loads((tmp_path / "run_plain" / "metrics.json").read_text())
    assert c["p_value"] > 0.05 and m["mean_relative_rank"] < c["mean_relative_rank"] - 0.1


def test_bad_input(n2s, tmp_path, capsys):
    def err_of(*args):
        assert main(["import-n2s", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"trials": [Evil()]}))
    assert "refused" in err_of(f"file={evil}", "sfreq=50", f"out={tmp_path / 'o1'}")
    assert not (tmp_path / "pwned").exists()
    assert "needs sfreq=" in err_of(f"file={n2s}", f"out={tmp_path / 'o2'}")
    assert "expected the sampling rate" in err_of(f"file={n2s}", "sfreq=0", f"out={tmp_path / 'o3'}")
    raw = pickle.loads(n2s.read_bytes())
    raw["trials"][3]["gamma"] = raw["trials"][3]["gamma"][:, :4]
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(raw))
    assert "trials[3].gamma: expected an array (n_times, 6)" in err_of(
        f"file={bad}", "sfreq=50", f"out={tmp_path / 'o4'}"
    )
    raw["trials"] = raw["trials"][:2]
    bad.write_bytes(pickle.dumps(raw))
    assert "2 trial(s)" in err_of(f"file={bad}", "sfreq=50", f"out={tmp_path / 'o5'}")
    assert "bands=['theta2']" in err_of(f"file={n2s}", "sfreq=50", "bands=[theta2]", f"out={tmp_path / 'o6'}")
    # brain-only shards cannot train the audio (linear) head: one line, naming the heads that can
    out = tmp_path / "ok"
    assert main(["import-n2s", f"file={n2s}", "sfreq=50", f"out={out}", *SMALL_ENCODER]) == 0
    capsys.readouterr()
    assert "already holds shards" in err_of(f"file={n2s}", "sfreq=50", f"out={out}")
    assert main(["finetune", f"ckpt={out / 'encoder_init.ckpt'}", f"shards={out}", f"out={tmp_path / 'r'}"]) == 2
    assert "no audio targets" in capsys.readouterr().err
