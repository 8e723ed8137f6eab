"""ieegfm: foundation-model pretraining on intracranial EEG paired with ambient audio."""

__version__ = "0.1.0"
