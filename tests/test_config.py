from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ieegfm.__main__ import main
from ieegfm.config import SCHEMAS, describe, load_config
from ieegfm.errors import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_every_yaml_loads_against_its_schema_and_equals_defaults(command):
    path = CONFIGS / f"{command}.yaml"
    merged = OmegaConf.merge(OmegaConf.structured(SCHEMAS[command]), OmegaConf.load(path))
    assert OmegaConf.to_yaml(merged) == OmegaConf.to_yaml(OmegaConf.structured(SCHEMAS[command]))


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match="unknown config key 'model.encodr'"):
        load_config("pretrain", overrides=["shards=x", "model.encodr=linear"])


def test_bad_choice_names_allowed_values():
    with pytest.raises(ConfigError, match=r"model.pooling='max': expected one of \['mean', 'none'\]"):
        load_config("pretrain", overrides=["shards=x", "model.pooling=max"])


def test_wrong_type_and_missing_required():
    with pytest.raises(ConfigError, match="preprocess.sfreq"):
        load_config("pack", overrides=["recordings=x", "preprocess.sfreq=fast"])
    with pytest.raises(ConfigError, match="needs recordings="):
        load_config("pack", overrides=[])
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
    text = describe("pack")
    assert "preprocess.l_freq" in text and "0.05" in text and "(Hz)" in text


def test_cli_user_error_is_one_line_without_traceback(capsys):
    code = main(["pretrain", "shards=x", "model.bogus=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "model.bogus" in err
