import dataclasses
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ieegfm.__main__ import main
from ieegfm.config import CHOICES, OPTION_GROUPS, SCHEMAS, ModelConfig, describe_keys, load_config
from ieegfm.errors import ConfigError


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_print_config_round_trips_to_the_defaults(command, capsys, tmp_path):
    """The dataclasses are the single source of defaults; --print-config writes a file --config reads back."""
    assert main([command, "--print-config"]) == 0
    text = capsys.readouterr().out
    f = tmp_path / "c.yaml"
    f.write_text(text)
    merged = OmegaConf.merge(OmegaConf.structured(SCHEMAS[command]), OmegaConf.load(f))
    assert OmegaConf.to_yaml(merged) == OmegaConf.to_yaml(OmegaConf.structured(SCHEMAS[command]))


def test_option_groups_mirror_the_registries():
    """Every registered encoder and loss is selectable, and its config keys are the ones its constructor takes."""
    from ieegfm.losses import LOSSES
    from ieegfm.models import ENCODERS

    groups = OPTION_GROUPS["pretrain"]
    assert set(CHOICES["pretrain"]["model.encoder"]) == set(groups["model.encoder"]) == set(ENCODERS)
    assert set(CHOICES["pretrain"]["loss.name"]) == set(groups["loss.name"]) == set(LOSSES)
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)} - {"encoder", "pooling", "input"}
    for name, cls in ENCODERS.items():
        takes = set(inspect.signature(cls.__init__).parameters)
        assert set(groups["model.encoder"][name]) == model_keys & takes, name
    renamed = {"learnable_scale": "learnable"}
    for name, cls in LOSSES.items():
        takes = set(inspect.signature(cls.__init__).parameters)
        assert {renamed.get(k, k) for k in groups["loss.name"][name]} <= takes, name


def test_choices_come_from_the_registries():
    """Each choice key's allowed values are read from the registry or module that acts on them, said once."""
    from ieegfm.config.choices import component_options
    from ieegfm.config.enums import CONDITIONS, FINETUNE_ROWS
    from ieegfm.conventions import POOLINGS
    from ieegfm.features import FEATURES
    from ieegfm.heads import HEADS
    from ieegfm.models import ENCODERS

    assert CHOICES["pretrain"]["model.encoder"] == tuple(ENCODERS) == CHOICES["scale"]["model.encoder"]
    assert CHOICES["import-n2s"]["model.pooling"] is POOLINGS
    assert CHOICES["finetune"]["head"] == tuple(HEADS)
    assert CHOICES["pack"]["audio.features"] == tuple(FEATURES) == CHOICES["encode"]["features"][1:]
    assert FINETUNE_ROWS == ("finetuned_frozen", "finetuned_full") and set(FINETUNE_ROWS) < set(CONDITIONS)
    assert OPTION_GROUPS["finetune"]["head"]["llm_prefix"] == ("n_tokens", "hidden", "dropout", "prefix_from", "pool")

    class Wide:  # a component registered later gets its keys from its constructor
        def __init__(self, n_chans, hidden, depth=2, learnable=True): ...

    from ieegfm.config import LossConfig

    assert component_options({"wide": Wide}, ModelConfig, exclude=("encoder",)) == {"wide": ("hidden", "depth")}
    assert component_options({"wide": Wide}, LossConfig)["wide"] == ("learnable_scale",)
    # no literal list of the registered names is left anywhere in the package
    src = Path(__file__).resolve().parents[1] / "src" / "ieegfm"
    for literal in ('("conv_attention", "linear")', '("clip", "siglip")', '("mean", "none")', '("encoder", "none")'):
        hits = [str(f) for f in src.rglob("*.py") if literal in f.read_text()]
        assert len(hits) <= 1, (literal, hits)


def test_a_key_of_another_component_is_an_error():
    with pytest.raises(ConfigError, match=r"model.depth=4 does not apply to model.encoder=linear"):
        load_config("pretrain", overrides=["shards=x", "model.encoder=linear", "model.depth=4"])
    with pytest.raises(ConfigError, match=r"loss.init_logit_bias=-5.0 does not apply to loss.name=clip"):
        load_config("pretrain", overrides=["shards=x", "loss.init_logit_bias=-5"])
    cfg = load_config("pretrain", overrides=["shards=x", "loss.name=siglip", "loss.init_logit_bias=-5"])
    assert cfg.loss.name == "siglip"
    assert load_config("pretrain", overrides=["shards=x", "model.encoder=linear", "model.kernel_size=5"])


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match="unknown config key 'model.encodr'"):
        load_config("pretrain", overrides=["shards=x", "model.encodr=linear"])


def test_bad_choice_names_allowed_values():
    with pytest.raises(ConfigError, match=r"model.pooling='max': expected one of \['mean', 'none'\]"):
        load_config("pretrain", overrides=["shards=x", "model.pooling=max"])


def test_wrong_type_and_missing_required():
    with pytest.raises(ConfigError, match="preprocess.sfreq"):
        load_config("pack", overrides=["recordings=x", "preprocess.sfreq=fast"])
    with pytest.raises(ConfigError, match="needs shards="):
        load_config("verify", overrides=[])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config("pack", overrides=["recordings"])


def test_config_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("shards: a\nmodel:\n  hidden: 7\n")
    cfg = load_config("pretrain", f, ["model.hidden=9"])
    assert cfg.shards == "a" and cfg.model.hidden == 9
    with pytest.raises(ConfigError, match="file not found"):
        load_config("pretrain", tmp_path / "nope.yaml", [])


def test_help_lists_keys_with_defaults():
    text = describe_keys("pack")
    assert "preprocess.l_freq" in text and "0.05" in text and "(Hz)" in text


def test_cli_user_error_is_one_line_without_traceback(capsys):
    code = main(["pretrain", "shards=x", "model.bogus=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "model.bogus" in err
