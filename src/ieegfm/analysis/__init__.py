"""Analyses over pretraining runs and shards, in the seed paper's terms: ``scale`` (the log-linear scaling law over
pretraining hours, :mod:`ieegfm.analysis.scale`, fitted by :mod:`ieegfm.analysis.fit`), ``drift`` (the recording
day in the embeddings, :mod:`ieegfm.analysis.drift`), ``encode`` (per-electrode encoding models,
:mod:`ieegfm.analysis.encode`) and ``report`` (one HTML page of a folder's results, :mod:`ieegfm.analysis.report`).
"""
