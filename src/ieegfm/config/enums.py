"""The allowed values of the choice keys that no component registry holds: said here once, read by the code that
acts on them (the pretraining control, the finetuning modules, the scale sweep and its subsets) and by
:mod:`ieegfm.config.choices`. Choices that name a registered component (an encoder, a loss, a head, audio features)
come from the registries themselves.
"""

from __future__ import annotations

__all__ = [
    "CONTROLS",
    "FREEZE",
    "INITS",
    "OBJECTIVES",
    "LLM_PRECISIONS",
    "LLM_MONITORS",
    "SUBSET_ORDERS",
    "COMPUTE",
    "HOURS_PER",
    "LAUNCHERS",
    "EXPORT_PATHS",
    "CONDITIONS",
    "FINETUNE_ROWS",
    "FIT_METRICS",
    "RESPONSES",
]

#: ``pretrain control=``: ``none`` (true pairs) or ``mismatched`` (each brain block with another block's audio).
CONTROLS = ("none", "mismatched")
#: ``finetune freeze=``: ``encoder`` (linear probe) or ``none`` (full finetuning).
FREEZE = ("encoder", "none")
#: ``finetune init=``: the pretrained encoder or a randomly initialised one.
INITS = ("pretrained", "scratch")
#: ``finetune objective=`` of the window heads: contrastive (CLIP) or mean-squared regression on the targets.
OBJECTIVES = ("clip", "regression")
#: ``llm.precision=``: bf16 autocast on a CUDA GPU that has it (``auto``), always bf16, or float32.
LLM_PRECISIONS = ("auto", "bf16", "32")
#: ``llm.monitor=``: the validation quantity that selects an LLM-prefix checkpoint (``val/<name>``, lower is better).
LLM_MONITORS = ("loss", "loss_vs_permuted")
#: ``scale order=``: which chunks a pretraining-hours budget keeps first.
SUBSET_ORDERS = ("recording", "random")
#: ``scale compute=``: the same steps at every point, or the same passes over each point's data.
COMPUTE = ("steps", "epochs")
#: ``scale hours_per=``: the hours grid counts hours per patient, or total hours shared among a point's patients.
HOURS_PER = ("patient", "total")
#: ``scale launcher=``: run the points here, or write a SLURM array script.
LAUNCHERS = ("local", "slurm")
#: ``ieegfm export paths=``: absolute file paths of the contract cut to their last part, or kept.
EXPORT_PATHS = ("basename", "keep")
#: The paper's comparison (``compare conditions=``): each row's (``init``, ``freeze``), None for the untrained
#: zero-shot row.
CONDITIONS: dict[str, tuple[str, str] | None] = {
    "zero_shot": None,
    "task_only": ("scratch", "none"),
    "finetuned_frozen": ("pretrained", "encoder"),
    "finetuned_full": ("pretrained", "none"),
}
#: The rows that finetune a pretrained encoder (``scale finetune.rows=``).
FINETUNE_ROWS = tuple(c for c, v in CONDITIONS.items() if v is not None and v[0] == "pretrained")
#: ``scale fit_metric=``: the row whose rank the scaling law is fitted to.
FIT_METRICS = (*FINETUNE_ROWS, "zero_shot")

#: ``simulate response=``: which band the audio-driven response is in: ``lfp`` (the low-frequency response only),
#: ``highgamma`` (the 70-170 Hz envelope only: invisible to ``preprocess.bands=[lfp]``) or ``both``.
RESPONSES = ("both", "lfp", "highgamma")
