"""Metrics of decoded text against the sentences heard: one module, library implementations, nothing downloaded.

=======================  ======================================================================================
key                      definition
=======================  ======================================================================================
``bleu``                 sacrebleu corpus BLEU-4 (13a tokenisation, 0-100, as sacrebleu reports it)
``bleu_nltk``            mean NLTK ``sentence_bleu`` (BLEU-4, ``SmoothingFunction().method7``): the
                         Neuro2Semantic paper's number, for comparison with it only. Not bounded by 1: an
                         exact 7-word match scores 1.117 (method7 includes method5's n-gram averaging)
``bleu1`` .. ``bleu4``   mean NLTK ``sentence_bleu`` with cumulative uniform weights up to n, 0-1 (BrainLLM),
                         ``method1`` smoothing (epsilon counts; under ``method5``/``method7`` NLTK's BLEU-n can
                         exceed 1)
``rouge1``/``rougeL``    mean rouge-score F-measure (its own tokeniser: lower case, alphanumeric tokens)
``*_recall``             the same, recall (BrainLLM reports ROUGE recall)
``wer``                  jiwer corpus word error rate on :func:`tokenize` d words
=======================  ======================================================================================

:func:`tokenize` is a regular expression (lower case, words with inner apostrophes, punctuation dropped): NLTK's
``word_tokenize`` needs the punkt model, a download. BERTScore (:func:`bertscore_f1`) is optional
(``pip install ieegfm[bertscore]``) and needs a local model folder; offline, its baseline rescaling files are not
available, so the number is reported as unrescaled (``bertscore_rescaled: false``).
"""

from __future__ import annotations

import logging
import re

import numpy as np

from ieegfm.errors import ConfigError, InputError

__all__ = ["tokenize", "text_metrics", "sentence_scores", "bertscore_f1"]

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (``don't`` stays one token; punctuation dropped)."""
    return _TOKEN.findall(str(text).lower())


def _check(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("no sentences to score")


def sentence_scores(hypotheses: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """Per-sentence scores (for paired tests between conditions on the same sentences).

    Returns
    -------
    dict of str -> ndarray, shape (n,)
        ``bleu_nltk``, ``bleu1`` .. ``bleu4``, ``rouge1``, ``rougeL``, ``rouge1_recall``, ``rougeL_recall``, ``wer``
        (per sentence: edits / reference words).
    """
    import jiwer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    logging.getLogger("absl").setLevel(logging.WARNING)  # rouge-score logs "Using default tokenizer." per scorer

    _check(hypotheses, references)
    smooth = SmoothingFunction()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    out: dict[str, list[float]] = {k: [] for k in ("bleu_nltk", "bleu1", "bleu2", "bleu3", "bleu4", "rouge1",
                                                  "rougeL", "rouge1_recall", "rougeL_recall", "wer")}  # fmt: skip
    for hyp, ref in zip(hypotheses, references):
        h, r = tokenize(hyp), tokenize(ref)
        out["bleu_nltk"].append(float(sentence_bleu([r], h, smoothing_function=smooth.method7)) if h and r else 0.0)
        for n in range(1, 5):
            weights = tuple([1.0 / n] * n)
            score = sentence_bleu([r], h, weights=weights, smoothing_function=smooth.method1) if h and r else 0.0
            out[f"bleu{n}"].append(float(score))
        sc = scorer.score(ref, hyp)
        for k in ("rouge1", "rougeL"):
            out[k].append(sc[k].fmeasure)
            out[f"{k}_recall"].append(sc[k].recall)
        out["wer"].append(float(jiwer.wer(" ".join(r), " ".join(h) or "<empty>")) if r else float(bool(h)))
    return {k: np.asarray(v, float) for k, v in out.items()}


def text_metrics(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus metrics of decoded sentences (see the module docstring for each key).

    Parameters
    ----------
    hypotheses : list of str
        Decoded text, one per heard sentence.
    references : list of str
        The sentences heard, same order.

    Returns
    -------
    dict
        ``bleu``, ``bleu_nltk``, ``bleu1`` .. ``bleu4``, ``rouge1``, ``rougeL``, ``rouge1_recall``,
        ``rougeL_recall``, ``wer``, ``n_sentences``.

    Raises
    ------
    ValueError
        Lengths differ or no sentences.
    """
    import jiwer
    import sacrebleu

    _check(hypotheses, references)
    per = sentence_scores(hypotheses, references)
    refs_tok = [" ".join(tokenize(r)) for r in references]
    hyps_tok = [" ".join(tokenize(h)) or "<empty>" for h in hypotheses]
    keep = [i for i, r in enumerate(refs_tok) if r]
    metrics = {
        "bleu": float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score),
        **{k: float(v.mean()) for k, v in per.items() if k != "wer"},
        "wer": float(jiwer.wer([refs_tok[i] for i in keep], [hyps_tok[i] for i in keep])) if keep else None,
        "n_sentences": len(references),
    }
    return metrics


def bertscore_f1(hypotheses: list[str], references: list[str], model: str, num_layers: int) -> dict:
    """BERTScore F1 with a local model, unrescaled (offline: no baseline files).

    Parameters
    ----------
    hypotheses, references : list of str
    model : str
        Local folder of a BERT-like model (``bert_score.score(model_type=<dir>, num_layers=...)``).
    num_layers : int
        Layer whose embeddings are matched (bert-score's table gives the recommended layer per model).

    Returns
    -------
    dict
        ``bertscore_f1`` (mean), ``bertscore_rescaled`` (False), ``bertscore_model``, ``bertscore_layer``.

    Raises
    ------
    ConfigError
        bert-score is not installed (says how to install it).
    InputError
        ``model`` is not a folder.
    """
    try:
        import bert_score
    except ImportError:
        raise ConfigError(
            "text.bertscore_model: BERTScore needs the optional extra: pip install 'ieegfm[bertscore]'"
        ) from None
    from pathlib import Path

    if not Path(model).is_dir():
        raise InputError(f"text.bertscore_model={model}: not a local model folder")
    _check(hypotheses, references)
    _, _, f1 = bert_score.score(
        list(hypotheses), list(references), model_type=str(model), num_layers=int(num_layers),
        rescale_with_baseline=False, verbose=False, device="cpu",
    )  # fmt: skip
    return {
        "bertscore_f1": float(f1.mean()),
        "bertscore_rescaled": False,
        "bertscore_model": str(model),
        "bertscore_layer": int(num_layers),
    }
