"""The typed schema of each command: :data:`SCHEMAS` maps a command name to its dataclass.

Each command has one structured config whose fields carry the defaults, units and help text; the groups it is
made of live in :mod:`~ieegfm.config.recording`, :mod:`~ieegfm.config.train`, :mod:`~ieegfm.config.finetune` and
:mod:`~ieegfm.config.analysis`.
"""

from __future__ import annotations

from ieegfm.config.analysis import DriftConfig, EmbedConfig, EncodeConfig, ReportConfig, ScaleConfig
from ieegfm.config.finetune import (
    CardsConfig,
    CompareConfig,
    FinetuneConfig,
    GenerateConfig,
)
from ieegfm.config.recording import (
    PackConfig,
    RecordingsConfig,
    SimulateConfig,
    VerifyConfig,
)
from ieegfm.config.train import (
    EvaluateConfig,
    ExportConfig,
    ImportN2SConfig,
    PretrainConfig,
)

__all__ = ["SCHEMAS"]

SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "pack": PackConfig,
    "recordings": RecordingsConfig,
    "verify": VerifyConfig,
    "pretrain": PretrainConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
    "finetune": FinetuneConfig,
    "compare": CompareConfig,
    "cards": CardsConfig,
    "generate": GenerateConfig,
    "import-n2s": ImportN2SConfig,
    "scale": ScaleConfig,
    "drift": DriftConfig,
    "embed": EmbedConfig,
    "encode": EncodeConfig,
    "report": ReportConfig,
}
