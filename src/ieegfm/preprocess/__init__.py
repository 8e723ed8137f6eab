"""Streaming iEEG preprocessing: filters, montages, robust scaling (array in, array out)."""

from .filters import StreamingPreprocessor, preprocess_array

__all__ = ["StreamingPreprocessor", "preprocess_array"]
