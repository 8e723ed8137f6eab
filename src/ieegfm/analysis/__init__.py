"""Analyses over pretraining runs and shards, in the seed paper's terms: ``scale`` (the log-linear scaling law over
pretraining hours, :mod:`ieegfm.analysis.scale`, fitted by :mod:`ieegfm.analysis.fit`, written by
:mod:`ieegfm.analysis.scale_outputs`), ``drift`` (the recording day in the embeddings, :mod:`ieegfm.analysis.drift`)
and ``encode`` (per-electrode encoding models, :mod:`ieegfm.analysis.encode`)."""
