"""``ieegfm report``: one page gathering what the commands wrote under a folder of runs.

Sections, each with its controls and the config that made it: pretraining runs (``summary.json``, ``test.json``,
``test.png``, the loss over steps from TensorBoard events), finetuning comparisons (``comparison.md`` + PNG),
scaling sweeps (``fit.json`` + ``scale.md`` + PNGs), drift (``drift.json`` + PNG), encoding models
(``encoding.json`` + PNG) and model cards (``card.json`` of finetuned runs).

Modules: :mod:`~ieegfm.analysis.report.blocks` (what a section holds; a reader of ieegfm's Markdown),
:mod:`~ieegfm.analysis.report.pretraining` (pretraining runs and their loss curves),
:mod:`~ieegfm.analysis.report.render` (HTML and Markdown) and :mod:`~ieegfm.analysis.report.run` (the command).
"""

from ieegfm.analysis.report.run import find_sections, report

__all__ = ["find_sections", "report"]
