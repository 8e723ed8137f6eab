"""Encoding models find the simulator's responsive electrodes, and the ridge matches scikit-learn's RidgeCV."""

import json

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from ieegfm.__main__ import main
from ieegfm.analysis.encode import encoding_scores, lagged, shaft_of
from ieegfm.analysis.ridge import ALPHAS, FoldedRidge


def test_encode_finds_the_truths_responsive_electrodes(patient, tmp_path, capsys):
    out = tmp_path / "enc"
    assert main(["encode", f"shards={patient['root'] / 'amb'}", f"out={out}", "n_shifts=20", "features=logmel"]) == 0
    result = json.loads((out / "encoding.json").read_text())
    truth = json.loads((patient["root"] / "sim" / "truth.json").read_text())
    responsive = set(truth["brain"]["responsive"])
    ch = result["channels"]
    hit = {n: any(c in responsive for c in n.split("-")) for n in ch}  # a bipolar channel with a responsive contact
    assert any(hit.values()) and not all(hit.values())
    r_hit = [ch[n]["r"] for n in ch if hit[n]]
    r_other = [ch[n]["r"] for n in ch if not hit[n]]
    assert min(r_hit) > max(r_other)  # the responsive electrodes come out on top
    assert all(ch[n]["r"] > ch[n]["null_r_95"] for n in ch if hit[n])
    assert np.median(r_other) < 0.05 and np.median(r_hit) > 0.3
    assert (out / "encoding.png").stat().st_size > 10_000
    assert "| channel | r | R2 |" in capsys.readouterr().out
    assert main(["report", str(out), f"out={tmp_path / 'r' / 'report.md'}"]) == 0
    page = (tmp_path / "r" / "report.md").read_text()
    assert "## Encoding models" in page and "(../enc/encoding.png)" in page
    top = max(ch, key=lambda n: ch[n]["r"])
    assert f"| {top} | {ch[top]['shaft']} | {ch[top]['r']:.3f} |" in page


def test_features_other_than_the_shards_are_one_line(patient, tmp_path, capsys):
    assert main(["encode", f"shards={patient['root'] / 'amb'}", f"out={tmp_path}", "features=wav2vec2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "hold logmel audio features; features=wav2vec2 needs shards packed with" in err
    assert len(err.splitlines()) == 1


def test_folded_ridge_equals_ridgecv_per_target():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 12)).astype(np.float32)
    y = x @ (rng.standard_normal((12, 5)) * [0, 0.01, 0.1, 1, 3]) + rng.standard_normal((1200, 5))
    groups = np.repeat(np.arange(6), 200)
    ridge = FoldedRidge(x, groups, 3)
    pred = ridge.predict(y)
    for train, test, *_ in ridge.folds:
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit((x[train] - mu) / sd, y[train])
        np.testing.assert_allclose(pred[test], ref.predict((x[test] - mu) / sd), rtol=1e-5, atol=1e-5)


def test_null_is_calibrated_without_coupling():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((4, 3000))
    x = lagged(audio, [0, 1, 2])
    y = rng.standard_normal((3000, 20))
    s = encoding_scores(x, y, np.repeat(np.arange(5), 600), n_shifts=40, min_shift=50)
    assert np.mean(s["p_value"] < 0.05) <= 0.15 and abs(np.median(s["r"])) < 0.05


def test_lags_and_shafts():
    x = np.arange(5, dtype=float)[None, :]
    np.testing.assert_array_equal(lagged(x, [0, 2])[:, 1], [0, 0, 0, 1, 2])  # past feature at lag 2
    np.testing.assert_array_equal(lagged(x, [-1])[:, 0], [1, 2, 3, 4, 0])
    assert shaft_of("LA3-LA4") == "LA" and shaft_of("A'1-A'2") == "A'" and shaft_of("RH10") == "RH"


@pytest.mark.slow
def test_encode_reads_the_highgamma_envelope_where_the_shards_have_it(tmp_path):
    """``simulate response=highgamma``: the audio drives only the 70-170 Hz envelope. Encoding the high-gamma rows
    (the default when packed) finds the responsive electrodes; the lfp rows of the same shards do not."""
    from ieegfm.config import load_config
    from ieegfm.simulate import simulate

    over = ["hours=0.25", "days=1", "block_minutes=5", "task_minutes=0", "response=highgamma", "seed=1"]
    simulate(load_config("simulate", overrides=[f"out={tmp_path / 'sim'}", *over]))
    shards = tmp_path / "hg"
    pack = [f"recordings={tmp_path / 'sim' / 'recordings.tsv'}", f"out={shards}", "preprocess.bands=[lfp,highgamma]"]
    assert main(["pack", *pack]) == 0
    responsive = set(json.loads((tmp_path / "sim" / "truth.json").read_text())["brain"]["responsive"])
    r = {}
    for band in ("highgamma", "lfp"):
        extra = [] if band == "highgamma" else ["band=lfp"]  # highgamma: the default
        assert main(["encode", f"shards={shards}", f"out={tmp_path / band}", "n_shifts=20", *extra]) == 0
        result = json.loads((tmp_path / band / "encoding.json").read_text())
        assert result["band"] == band
        ch = result["channels"]
        assert all(n.endswith("@highgamma") == (band == "highgamma") for n in ch)
        hit = [any(c in responsive for c in n.split("@")[0].split("-")) for n in ch]
        r[band] = (np.array([v["r"] for v in ch.values()]), np.array(hit))
    r_hg, hit = r["highgamma"]
    assert hit.any() and not hit.all()
    assert np.median(r_hg[hit]) > 0.3 and np.median(r_hg[~hit]) < 0.1
    r_lfp, _ = r["lfp"]
    assert np.median(r_lfp[hit]) < 0.1  # the truth is not in the low-frequency signal
    assert main(["encode", f"shards={shards}", f"out={tmp_path / 'x'}", "band=beta"]) == 2
