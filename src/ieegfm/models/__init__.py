"""Brain encoders: one per file on the shared :class:`BrainEncoder` base (pure torch).

``build_encoder(name, **kwargs)`` builds one by name. It passes each encoder only the keyword
arguments it accepts, dropping those that belong to another registered encoder (so a config that
sets ``hidden``, ``depth`` and ``dropout`` can build the linear baseline unchanged); a keyword that
no encoder knows is an error.
"""

from __future__ import annotations

import inspect

from ieegfm.models.base import INPUTS, BrainEncoder, SubjectLayers
from ieegfm.models.conv_attention import (
    AdditiveAttentionPooling,
    ConvAttentionEncoder,
    ResidualConvBlock,
    receptive_field_samples,
)
from ieegfm.models.linear import LinearEncoder
from ieegfm.models.spatial import SpatialAttention

ENCODERS: dict[str, type[BrainEncoder]] = {
    "conv_attention": ConvAttentionEncoder,
    "linear": LinearEncoder,
}


def _init_params(cls: type) -> set[str]:
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def encoder_kwargs(model, *, n_chans: int, n_subjects: int, n_times: int, sfreq: float, n_features: int) -> dict:
    """Arguments of :func:`build_encoder` from a ``model.*`` config group and the shape of the data.

    Parameters
    ----------
    model : DictConfig
        ``encoder``, ``pooling``, ``projected_chans``, ``hidden``, ``depth``, ``kernel_size``, ``dropout``,
        ``input``.
    n_chans, n_subjects, n_times : int
        Channels (the shards' ``n_chans_max``), subjects, samples per window.
    sfreq : float
        Hz.
    n_features : int
        Output features per time step (the audio targets' features, or an embedding size for brain-only shards).
    """
    return {
        "name": model.encoder,
        "n_chans": int(n_chans),
        "n_subjects": int(n_subjects),
        "n_times": int(n_times),
        "sfreq": float(sfreq),
        "n_features": int(n_features),
        "pooling": model.pooling,
        "projected_chans": model.projected_chans,
        "hidden": model.hidden,
        "depth": model.depth,
        "kernel_size": model.kernel_size,
        "dropout": model.dropout,
        "input": model.input,
    }


def build_encoder(name: str, **kwargs) -> BrainEncoder:
    """Build a brain encoder by name.

    Parameters
    ----------
    name : {'conv_attention', 'linear'}
        Registered encoder name.
    **kwargs
        Constructor arguments (``n_chans``, ``n_subjects``, ``n_times``, ``sfreq``, ``n_features``,
        ``pooling``, ``projected_chans``, ``hidden``, ``depth``, ``kernel_size``, ``dropout``).
        Arguments that belong to another registered encoder but not to this one (e.g. ``hidden``,
        ``depth``, ``dropout`` for ``'linear'``) are dropped.

    Returns
    -------
    BrainEncoder
        The encoder.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the allowed names), if a keyword argument
        is known to no encoder, or if a value is invalid.
    """
    if name not in ENCODERS:
        raise ValueError(f"encoder name must be one of {sorted(ENCODERS)}, got {name!r}")
    cls = ENCODERS[name]
    accepted = _init_params(cls)
    known = set().union(*(_init_params(c) for c in ENCODERS.values()))
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(
            f"unknown encoder argument(s) {unknown} for encoder {name!r}; {name!r} accepts {sorted(accepted)}"
        )
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


__all__ = [
    "ENCODERS",
    "AdditiveAttentionPooling",
    "BrainEncoder",
    "ConvAttentionEncoder",
    "LinearEncoder",
    "ResidualConvBlock",
    "SubjectLayers",
    "SpatialAttention",
    "INPUTS",
    "build_encoder",
    "receptive_field_samples",
]
