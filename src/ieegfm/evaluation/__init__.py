"""Evaluation: retrieval metrics (mean relative rank, top-k) with a shuffled-pairs control."""

from ieegfm.evaluation.retrieval import SUMMARY_KEYS, retrieval_metrics, retrieval_ranks

__all__ = ["SUMMARY_KEYS", "retrieval_metrics", "retrieval_ranks"]
