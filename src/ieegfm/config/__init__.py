"""Typed configuration schemas for every ieegfm command.

Each command has one structured config (a dataclass) whose fields carry the defaults, units and help text.
A YAML file given with ``--config`` and OmegaConf dotlist overrides (``key=value``) are merged on top, so a
misspelled key is an error naming the key. These dataclasses are the single source of the defaults:
``ieegfm CMD --print-config`` writes them (with any overrides) as a YAML file to start from, ``--help`` lists them
with units. Keys that belong to one registered component (an encoder, a loss) are checked against the one
selected (:data:`OPTION_GROUPS`). The allowed values of every choice key are read from the registries
(:mod:`ieegfm.config.choices`).

Modules: :mod:`~ieegfm.config.schemas` (the command -> dataclass table), :mod:`~ieegfm.config.load` (merging and
checks), :mod:`~ieegfm.config.describe` (``--help``), :mod:`~ieegfm.config.choices` (allowed values, read from the
registries) and :mod:`~ieegfm.config.enums` (the choices no registry holds).

Conventions: times in seconds (``*_s``), frequencies in Hz (``sfreq``, ``l_freq``, ``h_freq``), hours
(``hours``) where a recording length is meant.
"""

from ieegfm.config.analysis import (
    DriftConfig,
    EmbedConfig,
    EncodeConfig,
    ReportConfig,
    ScaleCondition,
    ScaleConfig,
    ScaleFinetuneConfig,
)
from ieegfm.config.choices import CHOICES, OPTION_GROUP_OF, OPTION_GROUPS
from ieegfm.config.describe import describe_keys
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
from ieegfm.config.load import load_config
from ieegfm.config.recording import (
    AudioConfig,
    PackConfig,
    PreprocessConfig,
    SimulateConfig,
    SplitConfig,
    VerifyConfig,
)
from ieegfm.config.schemas import SCHEMAS
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
    "VerifyConfig",
    "SplitConfig",
    "TextConfig",
    "TrainerConfig",
    "DriftConfig",
    "EmbedConfig",
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
    "describe_keys",
]
