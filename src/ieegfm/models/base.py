"""Shared base of the brain encoders, and the per-subject channel projection.

Every encoder maps a window of iEEG (zero-padded to at most the largest channel count over subjects) to an
embedding in the space of the frozen audio targets. The base validates inputs, knows the window
geometry (``n_chans``, ``n_times``, ``sfreq``) and offers ``return_features`` for the finetune heads.
This module is pure torch: it imports neither Lightning nor the data pipeline.
"""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.conventions import POOLINGS
from ieegfm.models.spatial import SpatialAttention

#: ``model.input``: a matrix per subject (:class:`SubjectLayers`) or spatial attention over electrode positions
#: (:class:`~ieegfm.models.spatial.SpatialAttention`).
INPUTS = ("subject_layers", "spatial")


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class SubjectLayers(nn.Module):
    """Per-subject linear projection of the channels.

    Each subject has its own matrix mapping its (zero-padded) contacts to ``projected_chans`` virtual
    channels, so that electrodes at different places in different patients share one encoder.

    Parameters
    ----------
    n_chans : int
        Number of input channels (the maximum over subjects; inputs are zero-padded to it).
    projected_chans : int
        Number of output channels.
    n_subjects : int
        Number of subjects, each with its own matrix.

    Attributes
    ----------
    weight : torch.nn.Parameter, shape (n_subjects, n_chans, projected_chans)
        Initialised from a standard normal divided by ``sqrt(n_chans)``, as in brainmagick.

    References
    ----------
    .. [1] Défossez, A., Caucheteux, C., Rapin, J., Kabeli, O., & King, J.-R. (2023). Decoding speech
       perception from non-invasive brain recordings. Nature Machine Intelligence, 5, 1097–1107.
       Code: https://github.com/facebookresearch/brainmagick (``SubjectLayers``).
    """

    def __init__(self, n_chans: int, projected_chans: int, n_subjects: int) -> None:
        super().__init__()
        self.n_chans = _check_positive_int("n_chans", n_chans)
        self.projected_chans = _check_positive_int("projected_chans", projected_chans)
        self.n_subjects = _check_positive_int("n_subjects", n_subjects)
        self.weight = nn.Parameter(torch.randn(n_subjects, n_chans, projected_chans))
        with torch.no_grad():
            self.weight.mul_(1.0 / n_chans**0.5)

    def forward(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """Project each sample's channels with its subject's matrix.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            iEEG windows; fewer channels than ``n_chans`` (a batch of subjects with small implants, unpadded) reads
            the first rows of each subject's matrix (the rest would multiply padding).
        subject : torch.Tensor of int, shape (batch,)
            Subject index of each window, in ``[0, n_subjects)``.

        Returns
        -------
        torch.Tensor, shape (batch, projected_chans, n_times)
            Projected channels.
        """
        n_chans, projected = x.shape[1], self.weight.shape[2]  # fewer than n_chans: the rest is padding
        index = subject.long().view(-1, 1, 1).expand(-1, n_chans, projected)
        weight = self.weight[:, :n_chans].gather(0, index)  # (batch, n_chans of x, projected_chans)
        return torch.einsum("bct,bcd->bdt", x, weight)

    def extra_repr(self) -> str:
        return f"n_chans={self.n_chans}, projected_chans={self.projected_chans}, n_subjects={self.n_subjects}"


class BrainEncoder(nn.Module):
    """Base class of the brain encoders.

    Subclasses implement :meth:`forward_features` (iEEG to a time-resolved hidden sequence) and
    :meth:`forward_head` (hidden sequence to the output embedding) and set :attr:`n_hidden`.

    Parameters
    ----------
    n_chans : int
        Number of input channels: the maximum over subjects; inputs have at most as many (zero-padded, or a
        batch of one subject's own channels).
    n_subjects : int
        Number of subjects (one channel projection each).
    n_times : int
        Window length in samples.
    sfreq : float
        Sampling frequency of the input, in Hz.
    n_features : int
        Output embedding dimension (the dimension of the audio targets).
    pooling : {'mean', 'none'}
        ``'mean'``: one embedding per window, shape ``(batch, n_features)``. ``'none'``: a
        time-resolved embedding at the input frame rate, shape ``(batch, n_features, n_times)``.

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``sfreq`` is not positive, or ``pooling`` is unknown.

    References
    ----------
    .. [1] arXiv 2512.15830 (the contrastive iEEG–audio pretraining recipe this package follows).
    """

    #: Channel dimension of the features returned with ``return_features=True``.
    n_hidden: int

    def __init__(
        self,
        n_chans: int,
        n_subjects: int,
        n_times: int,
        sfreq: float,
        n_features: int,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.n_chans = _check_positive_int("n_chans", n_chans)
        self.n_subjects = _check_positive_int("n_subjects", n_subjects)
        self.n_times = _check_positive_int("n_times", n_times)
        self.n_features = _check_positive_int("n_features", n_features)
        if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float)) or not sfreq > 0:
            raise ValueError(f"sfreq must be a positive number of Hz, got {sfreq!r}")
        self.sfreq = float(sfreq)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one sample's output: ``(n_features,)`` or ``(n_features, n_times)``."""
        if self.pooling == "mean":
            return (self.n_features,)
        return (self.n_features, self.n_times)

    def check_inputs(self, x: torch.Tensor, subject: torch.Tensor) -> None:
        """Validate the inputs of :meth:`forward`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            iEEG windows, floating point.
        subject : torch.Tensor of int, shape (batch,)
            Subject index of each window.

        Raises
        ------
        ValueError
            If a shape, dtype or subject index is not as expected; the message names the expected
            shape.
        """
        expected = f"(batch, n_chans<={self.n_chans}, n_times={self.n_times})"
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape {expected}, got {got}")
        if not 1 <= x.shape[1] <= self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"x must have shape {expected} (channels in the subjects' order, padded with zeros to the largest "
                f"implant in the batch at most), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if not isinstance(subject, torch.Tensor) or subject.ndim != 1 or subject.shape[0] != x.shape[0]:
            got = tuple(subject.shape) if isinstance(subject, torch.Tensor) else type(subject).__name__
            raise ValueError(f"subject must have shape (batch={x.shape[0]},), got {got}")
        if subject.is_floating_point() or subject.is_complex() or subject.dtype == torch.bool:
            raise ValueError(f"subject must be an integer (long) tensor, got dtype {subject.dtype}")
        # the range check reads the values: done on CPU tensors only, so a GPU step never waits on a host sync
        # and torch.compile sees no graph break (on GPU an out-of-range index fails in the gather instead)
        on_cpu = subject.device.type == "cpu" and not torch.compiler.is_compiling()
        if on_cpu and subject.numel() and bool(((subject < 0) | (subject >= self.n_subjects)).any()):
            raise ValueError(
                f"subject indices must lie in [0, n_subjects={self.n_subjects}), "
                f"got min {int(subject.min())}, max {int(subject.max())}"
            )

    def build_input(self, input: str, projected_chans: int) -> None:
        """The input layer: ``self.subject_layers`` (:class:`SubjectLayers`) or ``self.spatial``
        (:class:`~ieegfm.models.spatial.SpatialAttention`, positions set later with :meth:`set_positions`).

        Raises
        ------
        ValueError
            ``input`` not one of :data:`INPUTS`.
        """
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
        self.input = input
        if input == "spatial":
            self.spatial = SpatialAttention(self.n_chans, projected_chans, self.n_subjects)
        else:
            self.subject_layers = SubjectLayers(self.n_chans, projected_chans, self.n_subjects)

    def read_input(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """The input layer applied: (batch, n_chans, n_times) -> (batch, projected_chans, n_times)."""
        return self.input_layer(x, subject)

    @property
    def input_layer(self) -> nn.Module:
        """The input layer module (``subject_layers`` or ``spatial``)."""
        return self.spatial if self.input == "spatial" else self.subject_layers

    def set_positions(self, positions: torch.Tensor) -> None:
        """Electrode positions (mm) of each subject's channels, shape (n_subjects, n_chans, 3), NaN where unknown:
        read by the spatial input; ignored by per-subject layers."""
        if self.input == "spatial":
            self.spatial.set_positions(positions)

    def forward_features(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """Map iEEG to the pre-head hidden sequence ``(batch, n_hidden, n_times)``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map the hidden sequence to the output (``(batch, n_features[, n_times])``)."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, subject: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Encode iEEG windows.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            iEEG windows, zero-padded to at most ``n_chans`` channels.
        subject : torch.Tensor of int, shape (batch,)
            Subject index of each window, in ``[0, n_subjects)``.
        return_features : bool
            Also return the pre-head hidden sequence (for finetune heads).

        Returns
        -------
        output : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            The embedding; time-resolved when ``pooling='none'``.
        features : torch.Tensor, shape (batch, n_hidden, n_times)
            Only with ``return_features=True``: the hidden sequence the head reads.

        Raises
        ------
        ValueError
            If ``x`` or ``subject`` do not have the expected shape, dtype or range.
        """
        self.check_inputs(x, subject)
        features = self.forward_features(x, subject)
        output = self.forward_head(features)
        if return_features:
            return output, features
        return output
