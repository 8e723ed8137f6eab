"""Typed configuration schemas for every ieegfm command.

Each command has one structured config (a dataclass) whose fields carry the defaults, units and help text.
A YAML file given with ``--config`` and OmegaConf dotlist overrides (``key=value``) are merged on top, so a
misspelled key is an error naming the key. These dataclasses are the single source of the defaults:
``ieegfm CMD --print-config`` writes them (with any overrides) as a YAML file to start from, ``--help`` lists them
with units. Keys that belong to one registered component (an encoder, a loss) are checked against the one
selected (:data:`OPTION_GROUPS`).

Conventions: times in seconds (``*_s``), frequencies in Hz (``sfreq``, ``l_freq``, ``h_freq``), hours
(``hours``) where a recording length is meant.
"""

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ieegfm.config.analysis import (
    DriftConfig,
    EncodeConfig,
    ReportConfig,
    ScaleCondition,
    ScaleConfig,
    ScaleFinetuneConfig,
)
from ieegfm.config.finetune import (
    CardsConfig,
    CompareConfig,
    FinetuneCommon,
    FinetuneConfig,
    FinetuneDataConfig,
    FinetuneOptimConfig,
    FinetuneTrainerConfig,
    GenerateConfig,
    HeadConfig,
    LLMConfig,
    TextConfig,
)
from ieegfm.config.recording import (
    AudioConfig,
    PackConfig,
    PreprocessConfig,
    SimulateConfig,
    SplitConfig,
    VerifyConfig,
)
from ieegfm.config.train import (
    DataConfig,
    EvaluateConfig,
    ImportModelConfig,
    ImportN2SConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    TrainerConfig,
)
from ieegfm.errors import ConfigError

__all__ = [
    "AudioConfig",
    "CardsConfig",
    "CompareConfig",
    "DataConfig",
    "EvaluateConfig",
    "FinetuneCommon",
    "FinetuneConfig",
    "FinetuneDataConfig",
    "FinetuneOptimConfig",
    "FinetuneTrainerConfig",
    "GenerateConfig",
    "HeadConfig",
    "ImportModelConfig",
    "ImportN2SConfig",
    "LLMConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "PackConfig",
    "PreprocessConfig",
    "PretrainConfig",
    "SimulateConfig",
    "SplitConfig",
    "TextConfig",
    "TrainerConfig",
    "DriftConfig",
    "EncodeConfig",
    "ReportConfig",
    "ScaleCondition",
    "ScaleConfig",
    "ScaleFinetuneConfig",
    "SCHEMAS",
    "CHOICES",
    "OPTION_GROUPS",
    "OPTION_GROUP_OF",
    "load_config",
    "describe",
]


SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "pack": PackConfig,
    "verify": VerifyConfig,
    "pretrain": PretrainConfig,
    "evaluate": EvaluateConfig,
    "finetune": FinetuneConfig,
    "compare": CompareConfig,
    "cards": CardsConfig,
    "generate": GenerateConfig,
    "import-n2s": ImportN2SConfig,
    "scale": ScaleConfig,
    "drift": DriftConfig,
    "encode": EncodeConfig,
    "report": ReportConfig,
}

CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "pack": {
        "preprocess.montage": ("bipolar", "average", "none"),
        "preprocess.scale_by": ("train", "day", "block"),
        "audio.features": ("logmel", "wav2vec2"),
    },
    "pretrain": {
        "model.encoder": ("conv_attention", "linear"),
        "model.pooling": ("mean", "none"),
        "loss.name": ("clip", "siglip"),
        "control": ("none", "mismatched"),
    },
    "evaluate": {"split": ("train", "val", "test"), "channels": ("exact", "intersect")},
    "finetune": {
        "head": ("linear", "text_embedding", "llm_prefix"),
        "objective": ("clip", "regression"),
        "channels": ("exact", "intersect"),
        "init": ("pretrained", "scratch"),
        "freeze": ("encoder", "none"),
        "head_options.pool": ("mean", "lstm"),
        "text.convention": ("sentence_transformers", "t5_mean"),
        "llm.precision": ("auto", "bf16", "32"),
    },
    "compare": {"objective": ("clip", "regression"), "channels": ("exact", "intersect"), "head": ("linear",)},
    "generate": {"split": ("train", "val", "test"), "channels": ("exact", "intersect")},
    "scale": {
        "order": ("recording", "random"),
        "compute": ("steps", "epochs"),
        "launcher": ("local", "slurm"),
        "fit_metric": ("finetuned_frozen", "finetuned_full", "zero_shot"),
        "model.encoder": ("conv_attention", "linear"),
        "model.pooling": ("mean", "none"),
        "loss.name": ("clip", "siglip"),
        "finetune.objective": ("clip", "regression"),
        "finetune.channels": ("exact", "intersect"),
    },
    "drift": {"channels": ("exact", "intersect")},
    "encode": {"features": ("shards", "logmel", "wav2vec2")},
    "import-n2s": {"model.encoder": ("conv_attention", "linear"), "model.pooling": ("mean", "none")},
}


#: Option groups: a key that selects a registered component, and the config keys each component takes. A key of
#: another component set to a non-default value is an error (a linear encoder does not silently take model.depth).
#: Mirrors the registries (ieegfm.models.ENCODERS, ieegfm.losses.LOSSES); a test keeps the two in step.
OPTION_GROUPS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "pretrain": {
        "model.encoder": {
            "conv_attention": ("projected_chans", "hidden", "depth", "kernel_size", "dropout"),
            "linear": ("projected_chans", "kernel_size"),
        },
        "loss.name": {
            "clip": ("init_logit_scale", "max_logit_scale", "learnable_scale"),
            "siglip": ("init_logit_scale", "max_logit_scale", "learnable_scale", "init_logit_bias"),
        },
    },
    "finetune": {
        "head": {
            "linear": ("dropout",),
            "text_embedding": ("dropout", "hidden", "pool"),
            "llm_prefix": ("dropout", "hidden", "n_tokens"),
        },
    },
    "compare": {"head": {"linear": ("dropout",)}},
}
OPTION_GROUPS["scale"] = dict(OPTION_GROUPS["pretrain"])  # a sweep takes the pretraining keys


#: Where the options of a top-level selector live (``head`` -> ``head_options.*``); otherwise beside the selector.
OPTION_GROUP_OF = {"head": "head_options"}


def _check_option_groups(command: str, cfg: DictConfig) -> None:
    defaults = OmegaConf.structured(SCHEMAS[command])
    for selector, options in OPTION_GROUPS.get(command, {}).items():
        group = OPTION_GROUP_OF.get(selector, selector.rsplit(".", 1)[0])
        chosen = OmegaConf.select(cfg, selector)
        allowed = set(options.get(chosen, ()))
        others = {k for keys in options.values() for k in keys} - allowed
        for key in sorted(others):
            full = f"{group}.{key}"
            value = OmegaConf.select(cfg, full)
            if value != OmegaConf.select(defaults, full):
                raise ConfigError(
                    f"{full}={value!r} does not apply to {selector}={chosen} (it takes "
                    f"{', '.join(f'{group}.{k}' for k in options[chosen]) or 'no options'})"
                )


def load_config(
    command: str,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    check_missing: bool = True,
    base: dict | None = None,
) -> DictConfig:
    """Merge schema defaults, an optional YAML file and dotlist overrides.

    Parameters
    ----------
    command : str
        A key of :data:`SCHEMAS` (``simulate``, ``pack``, ``pretrain``, ``evaluate``, ``finetune``, ``compare``,
        ``cards``).
    config_file : str | Path | None
        YAML file merged over the defaults.
    overrides : list of str
        OmegaConf dotlist (``key=value``) merged last.
    check_missing : bool
        Raise when a required key (``???``) is unset (False for ``--print-config``).
    base : dict, optional
        Values merged over the defaults before the file and the overrides (a caller's config, e.g. the pretraining
        keys of a ``scale`` sweep); checked like them.

    Returns
    -------
    cfg : DictConfig
        Structured (typed) config; all required keys present.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, value outside its allowed choices, a key of another component than the one
        selected (:data:`OPTION_GROUPS`), missing required key, unreadable file.
    """
    if command not in SCHEMAS:
        raise ConfigError(f"unknown command {command!r}; expected one of {sorted(SCHEMAS)}")
    cfg = OmegaConf.structured(SCHEMAS[command])
    sources: list[tuple[str, Any]] = [] if base is None else [("config", OmegaConf.create(base))]
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        try:
            sources.append((str(path), OmegaConf.load(path)))
        except Exception as err:  # yaml errors
            raise ConfigError(f"--config {path}: not valid YAML ({err})") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"argument {item!r}: expected key=value (an OmegaConf dotlist override)")
        sources.append((f"override {item!r}", OmegaConf.from_dotlist([item])))
    for where, src in sources:
        try:
            cfg = OmegaConf.merge(cfg, src)
        except ConfigKeyError as err:
            raise ConfigError(
                f"{where}: unknown config key {err.full_key!r} for `ieegfm {command}` (see `ieegfm {command} --help`)"
            ) from None
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            msg = str(err).splitlines()[0]
            raise ConfigError(f"{where}: bad value for {key!r}: {msg}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and check_missing:
        raise ConfigError(f"`ieegfm {command}` needs {', '.join(k + '=...' for k in missing)}")
    for key, allowed in CHOICES.get(command, {}).items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            raise ConfigError(f"{key}={value!r}: expected one of {list(allowed)}")
    _check_option_groups(command, cfg)
    return cfg


def describe(command: str) -> str:
    """Human-readable list of the keys of a command, with defaults and help (for ``--help``)."""
    lines: list[str] = []

    def walk(schema: type, prefix: str) -> None:
        for f in dataclasses.fields(schema):
            key = prefix + f.name
            if dataclasses.is_dataclass(f.type) or (
                isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            ):
                walk(f.default_factory, key + ".")  # type: ignore[arg-type]
                continue
            default = "(required)" if f.default is MISSING else repr(f.default)
            if f.default is dataclasses.MISSING:
                default = "(required)" if f.default_factory is dataclasses.MISSING else repr(f.default_factory())
            help_ = f.metadata.get("help", "")
            lines.append(f"  {key:<28} {default:<22} {help_}")

    walk(SCHEMAS[command], "")
    return "\n".join(lines)
