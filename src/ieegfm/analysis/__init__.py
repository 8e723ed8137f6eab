"""Analyses over pretraining runs, in the seed paper's terms: ``scale`` (the log-linear scaling law over
pretraining hours, :mod:`ieegfm.analysis.scale`, fitted by :mod:`ieegfm.analysis.fit`)."""
