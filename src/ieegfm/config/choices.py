"""The allowed values of every choice key, per command, read from the registries that hold them.

A choice that names a registered component comes from its registry (:data:`ieegfm.models.ENCODERS`,
:data:`ieegfm.losses.LOSSES`, :data:`ieegfm.heads.HEADS`, :data:`ieegfm.features.FEATURES`); a library convention
from the module that applies it (poolings, montages, scaling rules, channel policies, text conventions); the rest
from :mod:`ieegfm.config.enums`. :data:`OPTION_GROUPS` lists, per selecting key, the config keys each component
takes, read from the component's constructor, so a new encoder or loss is selectable, and its keys checked, as soon
as it is registered.
"""

from __future__ import annotations

import dataclasses
import inspect

from ieegfm.checkpoint import CHANNEL_POLICIES
from ieegfm.config.enums import (
    COMPUTE,
    CONTROLS,
    EXPORT_PATHS,
    FIT_METRICS,
    FREEZE,
    HOURS_PER,
    INITS,
    LAUNCHERS,
    LLM_MONITORS,
    LLM_PRECISIONS,
    OBJECTIVES,
    RESPONSES,
    SUBSET_ORDERS,
)
from ieegfm.config.finetune import HeadConfig
from ieegfm.config.train import LossConfig, ModelConfig
from ieegfm.conventions import POOLINGS
from ieegfm.features import FEATURES
from ieegfm.heads import HEADS
from ieegfm.heads.llm_prefix import PREFIX_SOURCES
from ieegfm.heads.text_embedding import POOLS
from ieegfm.io.bids import AUDIO_SOURCES, START_FROM
from ieegfm.io.manifest import SPLITS
from ieegfm.losses import LOSSES
from ieegfm.models import ENCODERS, INPUTS
from ieegfm.preprocess import BANDS, MONTAGES, SCALING_RULES
from ieegfm.text.embed import CONVENTIONS

__all__ = ["CHOICES", "OPTION_GROUPS", "OPTION_GROUP_OF", "component_options"]

#: Config keys named differently from the constructor argument they set (``loss.learnable_scale`` -> ``learnable``).
RENAMED = {"learnable_scale": "learnable"}


def component_options(registry: dict[str, type], schema: type, exclude: tuple[str, ...] = ()) -> dict:
    """Per registered component, the fields of ``schema`` (a config dataclass) its constructor takes.

    Parameters
    ----------
    registry : dict of str to type
        Name -> class (a component registry).
    schema : type
        The config dataclass of the group (``ModelConfig``, ``LossConfig``, ``HeadConfig``).
    exclude : tuple of str
        Fields that every component receives from elsewhere (the selector itself, ``pooling``).

    Returns
    -------
    dict of str to tuple of str
        Name -> the group's keys it takes, in the order of its constructor's arguments.
    """
    key_of = {RENAMED.get(f.name, f.name): f.name for f in dataclasses.fields(schema) if f.name not in exclude}
    return {
        name: tuple(key_of[a] for a in inspect.signature(cls.__init__).parameters if a in key_of)
        for name, cls in registry.items()
    }


_ENCODER = {"model.encoder": tuple(ENCODERS), "model.pooling": POOLINGS, "model.input": INPUTS}
_LOSS = {"loss.name": tuple(LOSSES)}
_CHANNELS = {"channels": CHANNEL_POLICIES}

#: Command -> choice key -> allowed values (checked by :func:`ieegfm.config.load_config`).
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "simulate": {"response": RESPONSES},
    "pack": {
        "preprocess.montage": MONTAGES,
        "preprocess.bands": BANDS,
        "preprocess.scale_by": tuple(SCALING_RULES),
        "audio.features": tuple(FEATURES),
        "audio.source": AUDIO_SOURCES,
        "start_from": START_FROM,
    },
    "recordings": {"audio.source": AUDIO_SOURCES, "start_from": START_FROM},
    "pretrain": {**_ENCODER, **_LOSS, "control": CONTROLS},
    "evaluate": {"split": SPLITS, **_CHANNELS},
    "export": {"paths": EXPORT_PATHS},
    "finetune": {
        "head": tuple(HEADS),
        "objective": OBJECTIVES,
        **_CHANNELS,
        "init": INITS,
        "freeze": FREEZE,
        "head_options.pool": POOLS,
        "head_options.prefix_from": PREFIX_SOURCES,
        "text.convention": CONVENTIONS,
        "llm.precision": LLM_PRECISIONS,
        "llm.monitor": LLM_MONITORS,
    },
    "compare": {"objective": OBJECTIVES, **_CHANNELS, "head": ("linear",)},
    "generate": {"split": SPLITS, **_CHANNELS},
    "scale": {
        "order": SUBSET_ORDERS,
        "compute": COMPUTE,
        "hours_per": HOURS_PER,
        "launcher": LAUNCHERS,
        "fit_metric": FIT_METRICS,
        **_ENCODER,
        **_LOSS,
        "finetune.objective": OBJECTIVES,
        "finetune.channels": CHANNEL_POLICIES,
    },
    "drift": dict(_CHANNELS),
    "embed": {**_CHANNELS, "splits": SPLITS},
    "encode": {"features": ("shards", *FEATURES)},
    "import-n2s": dict(_ENCODER),
}

_PRETRAIN_GROUPS = {
    "model.encoder": component_options(ENCODERS, ModelConfig, exclude=("encoder", "pooling", "input")),
    "loss.name": component_options(LOSSES, LossConfig, exclude=("name",)),
}
#: Option groups: a key that selects a registered component, and the config keys each component takes. A key of
#: another component set to a non-default value is an error (a linear encoder does not silently take model.depth).
OPTION_GROUPS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "pretrain": _PRETRAIN_GROUPS,
    "scale": dict(_PRETRAIN_GROUPS),  # a sweep takes the pretraining keys
    "finetune": {"head": component_options(HEADS, HeadConfig)},
    "compare": {"head": {"linear": component_options(HEADS, HeadConfig)["linear"]}},
}

#: Where the options of a top-level selector live (``head`` -> ``head_options.*``); otherwise beside the selector.
OPTION_GROUP_OF = {"head": "head_options"}
