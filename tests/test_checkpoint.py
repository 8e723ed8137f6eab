"""The checkpoint contract: channels matched by name, safe loading, one-line errors."""

import json
import os

import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.checkpoint import (
    CONTRACT_KEY,
    CheckpointContract,
    encoder_for_shards,
    load_checkpoint,
    model_for_shards,
)
from ieegfm.errors import InputError
from ieegfm.models import build_encoder

CHANS = ["A1-A2", "A2-A3", "B1-B2", "B2-B3", "C1-C2"]
ENC = dict(
    name="conv_attention", n_chans=5, n_subjects=2, n_times=40, sfreq=40.0, n_features=6, hidden=8,
    projected_chans=4, depth=1, pooling="mean",
)  # fmt: skip


def _contract(subjects=None) -> CheckpointContract:
    subjects = subjects or {"s1": {"index": 0, "ch_names": CHANS}, "s2": {"index": 1, "ch_names": CHANS[:3]}}
    return CheckpointContract(kind="pretrain", encoder=dict(ENC), subjects=subjects, data={"shards": "x"})


def _manifest_dict(subjects: dict, n_features: int = 6) -> dict:
    return {
        "sfreq": 40.0,
        "window_s": 3.0,
        "n_features": n_features,
        "n_chans_max": max(len(c) for c in subjects.values()),
        "subjects": {s: {"index": i, "ch_names": list(c)} for i, (s, c) in enumerate(subjects.items())},
        "shards": {},
        "splits": {},
    }


def _manifest(subjects: dict, n_features: int = 6):
    from ieegfm.io.manifest import Manifest

    return Manifest.from_dict(_manifest_dict(subjects, n_features))


@pytest.fixture
def trained():
    torch.manual_seed(0)
    encoder = build_encoder(**ENC).eval()
    return encoder, {k: v.clone() for k, v in encoder.state_dict().items()}


def test_reordered_channels_give_the_same_embeddings(trained):
    encoder, weights = trained
    x = torch.randn(3, 5, 40)
    reference = encoder(x, torch.zeros(3, dtype=torch.long))
    order = [3, 0, 4, 2, 1]
    # shards list s2 first and s1's channels in another order: indices and rows must follow the names
    manifest = _manifest({"s2": CHANS[:3], "s1": [CHANS[i] for i in order]})
    adapted = encoder_for_shards(_contract(), weights, manifest, "test").eval()
    out = adapted(x[:, order], torch.ones(3, dtype=torch.long))  # s1 is shard subject 1 now
    torch.testing.assert_close(out, reference)
    # the naive load (same counts, no names) would give something else: the check is not vacuous
    assert not torch.allclose(encoder(x[:, order], torch.zeros(3, dtype=torch.long)), reference, atol=1e-3)


def test_missing_or_extra_channels_error_naming_them(trained):
    _, weights = trained
    manifest = _manifest({"s1": CHANS[:4] + ["Z9-Z10"]})
    with pytest.raises(InputError, match=r"missing from the shards: C1-C2; not in the checkpoint: Z9-Z10"):
        encoder_for_shards(_contract(), weights, manifest, "ckpt=a shards=b")


def test_intersect_zero_fills_the_missing_channels(trained, caplog):
    encoder, weights = trained
    manifest = _manifest({"s1": ["Z9-Z10", *CHANS[:4]]})
    adapted = encoder_for_shards(_contract(), weights, manifest, "test", channels="intersect").eval()
    assert "zero-filled (C1-C2)" in caplog.text
    x = torch.randn(2, 5, 40)
    ref_in = x[:, [1, 2, 3, 4, 0]].clone()
    ref_in[:, 4] = 0  # C1-C2 absent: zero-filled
    reference = encoder(ref_in, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(adapted(x, torch.zeros(2, dtype=torch.long)), reference)  # Z9-Z10 ignored


def test_unknown_subject_and_feature_mismatch_are_errors(trained):
    _, weights = trained
    with pytest.raises(InputError, match=r"subject 's3' of the shards is not in the checkpoint"):
        encoder_for_shards(_contract(), weights, _manifest({"s3": CHANS}), "w")
    with pytest.raises(InputError, match=r"7 audio features, the checkpoint 6"):
        encoder_for_shards(_contract(), weights, _manifest({"s1": CHANS}, n_features=7), "w")


def test_round_trip_through_a_file(trained, tmp_path):
    encoder, weights = trained
    path = tmp_path / "m.ckpt"
    torch.save(
        {"state_dict": {f"encoder.{k}": v for k, v in weights.items()}, CONTRACT_KEY: _contract().to_dict()}, path
    )
    model, contract = model_for_shards(path, _manifest({"s1": CHANS}), "s")
    assert contract.kind == "pretrain" and contract.subjects["s1"]["ch_names"] == CHANS
    x = torch.randn(2, 5, 40)
    torch.testing.assert_close(model(x, torch.zeros(2, dtype=torch.long)), encoder(x, torch.zeros(2, dtype=torch.long)))


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps(_manifest_dict({"s1": CHANS})))
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, path)
    with pytest.raises(InputError, match=r"refused: loading it would need arbitrary unpickling"):
        load_checkpoint(path)
    assert main(["evaluate", f"ckpt={path}", f"shards={shards}", f"out={tmp_path / 'm.json'}"]) == 2
    assert not marker.exists()


def test_not_a_checkpoint_and_legacy_checkpoints_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(InputError, match=r"not a torch checkpoint"):
        load_checkpoint(junk)
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"encoder_config": dict(ENC)}}, legacy)
    with pytest.raises(InputError, match=r"records no channel names"):
        load_checkpoint(legacy)
