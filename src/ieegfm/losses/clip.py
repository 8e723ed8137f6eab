"""CLIP (InfoNCE) loss between brain embeddings and frozen audio targets, with DDP global negatives."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_world_size() -> int:
    """Number of processes whose batches are gathered as negatives.

    Returns
    -------
    int
        ``torch.distributed`` world size when it is available and initialised, else 1. Multiply by
        the local batch size to get the effective contrastive batch (number of candidates).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _flatten_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.reshape(x.shape[0], -1), dim=-1)


def check_pair(brain: torch.Tensor, audio: torch.Tensor) -> None:
    """Check that brain and audio embeddings are a matching batch.

    Parameters
    ----------
    brain : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
        Brain embeddings.
    audio : torch.Tensor, same shape as ``brain``
        Audio targets.

    Raises
    ------
    ValueError
        If either is not 2-D or 3-D, if their shapes differ, or if the batch is empty.
    """
    for name, x in (("brain", brain), ("audio", audio)):
        if not isinstance(x, torch.Tensor) or x.ndim not in (2, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (batch, n_features) or (batch, n_features, n_times), got {got}")
    if brain.shape != audio.shape:
        raise ValueError(f"brain and audio must have the same shape, got {tuple(brain.shape)} and {tuple(audio.shape)}")
    if brain.shape[0] == 0:
        raise ValueError("brain and audio must hold at least one pair, got batch size 0")


class LogitScaleMixin:
    """Learnable logit scale clamped to ``[0, max_logit_scale]`` (open_clip), shared by the contrastive losses.

    Expects ``logit_scale`` (parameter), ``max_logit_scale`` and ``gather_distributed`` attributes.
    """

    @property
    def scale(self) -> float:
        """Multiplier applied to cosine similarities: ``exp(clamp(logit_scale, 0, max))``."""
        return float(self.logit_scale.detach().clamp(0.0, self.max_logit_scale).exp())

    @property
    def world_size(self) -> int:
        """Number of ranks gathered by :meth:`forward` (1 without ``torch.distributed``)."""
        return gather_world_size() if self.gather_distributed else 1

    def _clamped_scale(self) -> torch.Tensor:
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, self.max_logit_scale)
        return self.logit_scale.exp()


class ClipLoss(LogitScaleMixin, nn.Module):
    """Symmetric CLIP loss with a learnable, clamped logit scale and global negatives across ranks.

    Both sides are flattened to ``(batch, -1)`` (a time-resolved embedding is scored as a whole
    sequence, as in brainmagick) and L2-normalised. Logits are ``exp(logit_scale) * cos``; the loss
    is the mean of the brain→audio and audio→brain cross-entropies, the positive of row ``i``
    being column ``i``.

    Under ``torch.distributed`` (available, initialised, world size > 1, and
    ``gather_distributed=True``) every rank scores its local rows against the whole global batch:
    audio is gathered without gradient (``dist.all_gather``; it is a frozen target), brain with
    gradient (an all-gather autograd function whose backward all-reduces the gradient, as
    ``torch.distributed.nn.functional.all_gather`` does), and the labels are offset by the rows of
    the lower ranks. The local loss sums over the local rows only, so the mean of the per-rank
    losses equals the single-process loss over the global batch, and averaging gradients over
    ranks (as DistributedDataParallel does) gives the single-process gradient.

    Parameters
    ----------
    init_logit_scale : float
        Initial ``logit_scale`` (log of the inverse temperature); default ``ln(1 / 0.07)``.
    max_logit_scale : float
        Upper clamp of ``logit_scale``; default ``ln 100``. The lower clamp is 0.
    learnable : bool
        Whether ``logit_scale`` receives gradients.
    gather_distributed : bool
        Gather negatives across ranks when ``torch.distributed`` is initialised.

    Attributes
    ----------
    logit_scale : torch.nn.Parameter, shape ()
        Log of the multiplier applied to cosine similarities. Clamped in place to
        ``[0, max_logit_scale]`` at each forward (as open_clip does after each optimiser step).
    n_candidates : int
        Number of candidates (global batch size) scored by the last :meth:`forward`; 0 before.

    Raises
    ------
    ValueError
        If the scales are not finite or ``max_logit_scale`` is negative.

    Notes
    -----
    Local batch sizes may differ between ranks (the last batches of an epoch in which every window is used
    exactly once): the sizes are all-gathered, batches are padded to the largest for the gather and the padding
    is dropped. The local loss is the sum over local rows times ``world / global_batch``, so the mean over ranks
    (what DistributedDataParallel's gradient averaging computes) is the single-process mean over the global batch
    whatever the split.

    References
    ----------
    .. [1] Radford, A., et al. (2021). Learning transferable visual models from natural language
       supervision. ICML.
    .. [2] Défossez, A., et al. (2023). Decoding speech perception from non-invasive brain
       recordings. Nature Machine Intelligence, 5, 1097–1107 (CLIP loss on brain vs audio).
    .. [3] Ilharco, G., et al. (2021). OpenCLIP. https://github.com/mlfoundations/open_clip
       (``ClipLoss`` with ``gather_with_grad`` and ``local_loss``; logit-scale clamping).
    .. [4] arXiv 2512.15830 (the pretraining recipe).
    """

    def __init__(
        self,
        init_logit_scale: float = math.log(1 / 0.07),
        max_logit_scale: float = math.log(100),
        learnable: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if not math.isfinite(init_logit_scale):
            raise ValueError(f"init_logit_scale must be finite, got {init_logit_scale!r}")
        if not math.isfinite(max_logit_scale) or max_logit_scale < 0:
            raise ValueError(f"max_logit_scale must be finite and >= 0, got {max_logit_scale!r}")
        self.max_logit_scale = float(max_logit_scale)
        self.learnable = bool(learnable)
        self.gather_distributed = bool(gather_distributed)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)), requires_grad=self.learnable)
        self.n_candidates = 0

    def logits(self, brain: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Local brain→audio logits, without gathering (for evaluation).

        Parameters
        ----------
        brain : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            Brain embeddings.
        audio : torch.Tensor, same shape as ``brain``
            Audio targets.

        Returns
        -------
        torch.Tensor, shape (batch, batch)
            ``scale * cos(brain_i, audio_j)``; row ``i`` scores the candidates for brain window ``i``.

        Raises
        ------
        ValueError
            If the shapes do not match (see :func:`check_pair`).
        """
        check_pair(brain, audio)
        b = _flatten_normalize(brain)
        a = _flatten_normalize(audio)
        return self._clamped_scale() * b @ a.T

    def forward(self, brain: torch.Tensor, audio: torch.Tensor, gather: bool = True) -> torch.Tensor:
        """Symmetric CLIP loss (global negatives under DDP).

        Parameters
        ----------
        brain : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            Brain embeddings (local batch).
        audio : torch.Tensor, same shape as ``brain``
            Frozen audio targets (local batch); no gradient flows into them.
        gather : bool
            Gather the other ranks' rows as negatives (``gather_distributed``); ``False`` scores the local batch
            alone (the validation loss, where every rank holds every window).

        Returns
        -------
        torch.Tensor, shape ()
            ``(CE(brain→audio) + CE(audio→brain)) / 2``, summed over the local rows and divided by
            ``global_batch / world`` (the local mean when every rank holds the same batch size).

        Raises
        ------
        ValueError
            If the shapes do not match (see :func:`check_pair`).
        """
        check_pair(brain, audio)
        scale = self._clamped_scale()
        b = _flatten_normalize(brain)
        a = _flatten_normalize(audio.detach())
        world = self.world_size if gather else 1
        if world > 1:
            a_all, sizes, offset = gather_batches(a, with_grad=False)
            b_all, _, _ = gather_batches(b, with_grad=True, sizes=sizes)
        else:
            a_all, b_all, sizes, offset = a, b, [b.shape[0]], 0
        total = sum(sizes)
        self.n_candidates = total
        labels = torch.arange(b.shape[0], device=b.device) + offset
        logits_brain = scale * b @ a_all.T  # (batch, global_batch)
        logits_audio = scale * a @ b_all.T
        ce = F.cross_entropy(logits_brain, labels, reduction="sum") + F.cross_entropy(
            logits_audio, labels, reduction="sum"
        )
        return ce / 2 * (world / total)

    def extra_repr(self) -> str:
        return (
            f"logit_scale={float(self.logit_scale):.4f}, max_logit_scale={self.max_logit_scale:.4f}, "
            f"learnable={self.learnable}"
        )


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sends each rank the summed gradient of its own slice.

    Equivalent to ``torch.distributed.nn.functional.all_gather`` (deprecated in recent torch releases);
    works on gloo and NCCL. Every rank's loss may depend on every rank's tensor, so the gradient
    of rank ``r``'s input is the sum over ranks of the gradient flowing into slot ``r``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        ctx.rank = dist.get_rank()
        gathered = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(gathered, x)
        return torch.stack(gathered)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank]


def gather_batches(
    x: torch.Tensor, with_grad: bool, sizes: list[int] | None = None
) -> tuple[torch.Tensor, list[int], int]:
    """Concatenate every rank's ``x`` along dim 0; local batch sizes may differ between ranks.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, ...)
        This rank's rows (``batch`` may differ per rank; trailing shapes must match).
    with_grad : bool
        Keep the autograd graph across ranks (the gradient of this rank's rows sums over every rank's use).
    sizes : list of int, optional
        Every rank's batch size, when already known (from a previous call in the same step): saves the
        all-gather of the sizes.

    Returns
    -------
    gathered : torch.Tensor, shape (global_batch, ...)
        Rows of rank 0, then rank 1, ...
    sizes : list of int
        Local batch size of each rank.
    offset : int
        Row of ``gathered`` where this rank's rows start.
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    if sizes is None:
        size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        gathered_sizes = [torch.empty_like(size) for _ in range(world)]
        dist.all_gather(gathered_sizes, size)
        sizes = [int(s) for s in gathered_sizes]
    n_max = max(sizes)
    x = x.contiguous()
    if x.shape[0] < n_max:  # pad to the largest batch (all_gather needs equal shapes); dropped below
        x = torch.cat([x, x.new_zeros((n_max - x.shape[0], *x.shape[1:]))])
    if with_grad:
        parts = list(_AllGatherWithGrad.apply(x).unbind(0))
    else:
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)
    gathered = torch.cat([p[:n] for p, n in zip(parts, sizes)])
    return gathered, sizes, sum(sizes[:rank])
