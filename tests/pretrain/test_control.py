"""control=mismatched: brain blocks paired with other blocks' audio; the within-block rank must sit at chance."""

import json

from ieegfm.__main__ import main
from ieegfm.data.tar import decode_sample, tar_samples


def test_mismatched_control_is_at_chance_within_blocks(patient, tmp_path):
    run = tmp_path / "mm"
    args = [
        "pretrain",
        f"shards={patient['root'] / 'amb'}",
        f"out={run}",
        "control=mismatched",
        "trainer.max_steps=200",
    ]
    tiny = ["model.hidden=32", "model.depth=2", "model.projected_chans=16", "data.batch_size=32", "optim.lr=2e-3"]
    assert main([*args, *tiny, "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]) == 0
    shards = run / "mismatched_shards"
    manifest = json.loads((shards / "manifest.json").read_text())
    pairs = manifest["control"]["pairs"]
    assert len(pairs) == 6 and all(a != b for a, b in pairs.items()) and sorted(pairs) == sorted(pairs.values())
    for s in tar_samples(iter([{"url": str(shards / manifest["shards"]["test"][0]["name"])}])):
        meta = decode_sample(s)["meta"]
        assert meta["audio_from"]["block"] == pairs[meta["block"]] != meta["block"]
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={shards}", f"out={tmp_path / 'mm.json'}"]) == 0
    control = json.loads((tmp_path / "mm.json").read_text())
    assert abs(control["within_block_mean_relative_rank"] - 0.5) < 0.07, control
    # the same recipe on the true pairs learns (the test has power)
    assert (
        main(["evaluate", f"ckpt={patient['ckpt']}", f"shards={patient['root'] / 'amb'}", f"out={tmp_path / 't.json'}"])
        == 0
    )
    true = json.loads((tmp_path / "t.json").read_text())
    assert true["within_block_mean_relative_rank"] < 0.35, true
