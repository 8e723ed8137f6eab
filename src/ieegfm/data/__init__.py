"""Streaming shards into training windows: webdataset stages and the LightningDataModule."""

from ieegfm.data.datamodule import ShardDataModule, read_manifest
from ieegfm.data.pipeline import SharedEpoch, SliceWindows, collate

__all__ = ["ShardDataModule", "SharedEpoch", "SliceWindows", "collate", "read_manifest"]
