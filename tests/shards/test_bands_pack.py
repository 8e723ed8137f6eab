"""``pack preprocess.bands=[...]``: band rows beside the lfp rows, named and recorded; lfp unchanged; bad input."""

from __future__ import annotations

import json

import numpy as np
import webdataset as wds

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.io.manifest import read_manifest
from ieegfm.shards.pack import pack

BASE = ["split.val=0.25", "split.test=0.25", "chunk_s=20", "samples_per_shard=2"]


def _samples(out):
    manifest = json.loads((out / "manifest.json").read_text())
    urls = [str(out / s["name"]) for ss in manifest["shards"].values() for s in ss]
    return list(wds.WebDataset(urls, shardshuffle=False).decode())


def test_band_rows_follow_the_lfp_rows_which_do_not_change(recordings, tmp_path):
    lfp, banded = tmp_path / "lfp", tmp_path / "banded"
    pack(load_config("pack", overrides=[f"recordings={recordings}", f"out={lfp}", *BASE]))
    over = [f"recordings={recordings}", f"out={banded}", *BASE, "preprocess.bands=[lfp,gamma]"]
    pack(load_config("pack", overrides=over))
    m = read_manifest(banded)
    assert read_manifest(lfp).bands == ("lfp",) and m.bands == ("lfp", "gamma")
    names = list(m.subjects["01"].ch_names)
    base = list(read_manifest(lfp).subjects["01"].ch_names)
    assert names == base + [f"{n}@gamma" for n in base] and m.n_chans_max == 2 * len(base)
    a, b = _samples(lfp), _samples(banded)
    assert [s["__key__"] for s in a] == [s["__key__"] for s in b]
    for sa, sb in zip(a, b):
        assert sb["json"]["ch_names"] == names
        np.testing.assert_array_equal(sb["brain.npy"][: len(base)], sa["brain.npy"])  # lfp rows: the same bytes
        np.testing.assert_array_equal(sb["audio.npy"], sa["audio.npy"])
        gamma = sb["brain.npy"][len(base) :].astype(float)
        assert np.isfinite(gamma).all() and gamma.std() > 0.1  # robust-scaled envelopes, not zeros


def test_bad_bands_are_one_line_errors(recordings, tmp_path, capsys):
    base = ["pack", f"recordings={recordings}", f"out={tmp_path / 's'}"]
    assert main([*base, "preprocess.bands=[lfp,hg]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "preprocess.bands" in err and "highgamma" in err
    assert main([*base, "preprocess.bands=[lfp,lfp]"]) == 2
    assert "distinct" in capsys.readouterr().err
    assert main([*base, "preprocess.bands=[lfp,highgamma]"]) == 2  # the fixture is sampled at 256 Hz
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "256 Hz" in err and "425" in err and ".edf" in err
    assert not (tmp_path / "s" / "manifest.json").exists()
