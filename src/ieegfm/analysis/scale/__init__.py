"""``ieegfm scale``: pretrain on nested subsets of the training hours, finetune every point, fit the scaling law.

A sweep is a grid of points (condition x hours x seed). Each point pretrains on a nested subset of each patient's
training hours (:mod:`ieegfm.shards.subset`: validation and test windows unchanged), then scores the checkpoint
zero-shot on the task shards and finetunes it (the ``ieegfm compare`` rows, same task splits at every point), so
that only the pretraining hours change. The smallest budget of each (condition, seed) also trains the task-only
baseline (the same architecture on the task alone; it does not depend on hours). A point's ``card.json`` is
written last: a rerun skips points whose card matches their config, and an interrupted pretraining resumes from
its ``last.ckpt``, so a killed sweep loses at most the steps since that point's last checkpoint. Everything that
can be checked is checked before any training: the hours the shards hold, the patients of every shard set, the
task split the finished points were scored on.

Modules, in the order a sweep runs: :mod:`~ieegfm.analysis.scale.plan` (points and their configs, the checks),
:mod:`~ieegfm.analysis.scale.point` (one point: pretrain, score, finetune, its card),
:mod:`~ieegfm.analysis.scale.slurm` (the array script), :mod:`~ieegfm.analysis.scale.outputs` (the table, the
fit of :mod:`ieegfm.analysis.fit`, the paired tests, the figures) and :mod:`~ieegfm.analysis.scale.run` (the
command).
"""

from ieegfm.analysis.scale.run import scale

__all__ = ["scale"]
