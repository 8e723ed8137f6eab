"""Contrastive losses between brain embeddings and frozen audio targets (pure torch).

``build_loss(name, **kwargs)`` builds one by name; keyword arguments go to the loss constructor.
"""

from __future__ import annotations

from torch import nn

from ieegfm.losses.clip import ClipLoss, check_pair, gather_world_size
from ieegfm.losses.siglip import SigLipLoss

LOSSES: dict[str, type[nn.Module]] = {"clip": ClipLoss, "siglip": SigLipLoss}


def build_loss(name: str = "clip", **kwargs) -> nn.Module:
    """Build a contrastive loss by name.

    Parameters
    ----------
    name : {'clip', 'siglip'}
        Registered loss name.
    **kwargs
        Constructor arguments of the loss (e.g. ``init_logit_scale``, ``max_logit_scale``,
        ``learnable`` for ``'clip'``).

    Returns
    -------
    torch.nn.Module
        The loss; called as ``loss(brain, audio)``.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the allowed names) or an argument is not
        accepted by that loss.
    """
    if name not in LOSSES:
        raise ValueError(f"loss name must be one of {sorted(LOSSES)}, got {name!r}")
    try:
        return LOSSES[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"invalid argument for loss {name!r}: {err}") from err


__all__ = ["LOSSES", "ClipLoss", "SigLipLoss", "build_loss", "check_pair", "gather_world_size"]
