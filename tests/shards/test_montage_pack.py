"""``preprocess.montage=laplacian`` through pack: contact names kept, each the contact minus its neighbours' mean."""

import json

from ieegfm.__main__ import main


def test_pack_with_the_laplacian_montage(recordings, tmp_path):
    out = {}
    for montage in ("laplacian", "none"):
        out[montage] = tmp_path / montage
        over = [f"recordings={recordings}", f"out={out[montage]}", f"preprocess.montage={montage}", "split.val=0.25"]
        assert main(["pack", *over, "split.test=0.25", "preprocess.scale_by=block"]) == 0
    m = {k: json.loads((v / "manifest.json").read_text()) for k, v in out.items()}
    names = m["laplacian"]["subjects"]["01"]["ch_names"]
    assert names == m["none"]["subjects"]["01"]["ch_names"] == [f"{s}{i}" for s in ("LA", "LH") for i in range(1, 5)]
    assert m["laplacian"]["config"]["preprocess"]["montage"] == "laplacian"
