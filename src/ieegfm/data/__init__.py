"""Streaming shards into windows, in data-flow order: ``tar`` (reading shards) -> ``plan`` (the epoch plan) ->
``windows`` (windows, shuffle buffer, batches) -> ``loader`` (the timed DataLoader) -> ``datamodule``; ``targets``
says what a window's contrastive target is."""

from ieegfm.data.datamodule import ShardDataModule
from ieegfm.data.plan import SharedEpoch
from ieegfm.data.targets import target_of
from ieegfm.data.windows import SliceWindows, collate

__all__ = ["ShardDataModule", "SharedEpoch", "SliceWindows", "collate", "target_of"]
