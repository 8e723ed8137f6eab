"""Evaluation: retrieval metrics (mean relative rank, top-k) with a shuffled-pairs control."""

from ieegfm.evaluation.retrieval import retrieval_metrics, retrieval_ranks

__all__ = ["retrieval_metrics", "retrieval_ranks"]
