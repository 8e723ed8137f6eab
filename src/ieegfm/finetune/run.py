"""``ieegfm finetune``: a head on a pretrained (or freshly initialised) encoder, trained on a patient's task data.

:func:`finetune` picks the recipe of the configured head's kind and runs the steps every kind shares
(:func:`ieegfm.finetune.runner.run_finetuning`). The run folder keeps what a lab needs for years: ``model.ckpt``
(weights and the checkpoint contract, loadable with ``weights_only=True``), ``config.yaml`` (resolved),
``metrics.json`` (validation and test metrics with controls), ``card.json`` + ``card.md``, ``checkpoints/`` and
TensorBoard logs, plus what the head's kind adds (:mod:`ieegfm.finetune.audio_run`,
:mod:`ieegfm.finetune.sentence_run`, :mod:`ieegfm.finetune.llm_run`).
"""

from __future__ import annotations

from pathlib import Path

from ieegfm.errors import ConfigError
from ieegfm.finetune.audio_run import AudioTargetRecipe, score_test_split
from ieegfm.finetune.llm_run import LanguageModelRecipe
from ieegfm.finetune.runner import HeadRecipe, encoder_lr_scale, run_finetuning
from ieegfm.finetune.sentence_run import SentenceRecipe
from ieegfm.heads import HEADS, LANGUAGE_MODEL_HEADS, SENTENCE_HEADS

__all__ = ["finetune", "recipe_for", "score_test_split"]


def recipe_for(head: str) -> HeadRecipe:
    """A fresh recipe for a head's kind (:mod:`ieegfm.heads`): sentence heads (:data:`ieegfm.heads.SENTENCE_HEADS`),
    language-model heads (:data:`ieegfm.heads.LANGUAGE_MODEL_HEADS`), else a window head on audio targets.

    Parameters
    ----------
    head : str
        A registered head name (a key of :data:`ieegfm.heads.HEADS`).

    Returns
    -------
    recipe : HeadRecipe

    Raises
    ------
    ConfigError
        Unknown head.
    """
    if head not in HEADS:
        raise ConfigError(f"head={head!r}: expected one of {sorted(HEADS)}")
    if head in SENTENCE_HEADS:
        return SentenceRecipe()
    if head in LANGUAGE_MODEL_HEADS:
        return LanguageModelRecipe()
    return AudioTargetRecipe()


def finetune(cfg, score_test: bool = True) -> Path:
    """Finetune a head (and optionally the encoder) on task shards; select on val, report on test.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig`.
    score_test : bool
        Score the selected weights on the test split and write the card (:func:`score_test_split`). ``False``
        (audio-target heads only): train and select on validation only, leaving the test split unread, as a
        hyper-parameter search must (``ieegfm compare``'s learning-rate grid).

    Returns
    -------
    run : Path
        The run folder (see the module docstring).

    Raises
    ------
    ConfigError
        Unknown head; bad ``init``, ``freeze`` or ``optim.encoder_lr_scale``; a validation-only run of a head that
        does not support it; the head kind's configuration checks (e.g. ``objective``).
    InputError
        Checkpoint missing, unsafe or not ieegfm's; task shards whose subjects or channels do not match it (see
        :func:`ieegfm.checkpoint.encoder_for_shards`); an empty task split; the head kind's data checks.

    References
    ----------
    arXiv 2512.15830: pretrained on ambient audio, finetuned per patient on an audiobook-listening task.
    """
    recipe = recipe_for(cfg.head)
    encoder_lr_scale(cfg, log=False)  # a bad init/freeze/scale fails before any work
    if not score_test and not recipe.validation_only:
        raise ConfigError(f"head={cfg.head}: a validation-only run is supported for audio-target heads only")
    return run_finetuning(cfg, recipe, score_test)
