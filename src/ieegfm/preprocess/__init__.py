"""Streaming iEEG preprocessing: filters, montages, robust scaling (array in, array out).

No file I/O, no torch: the packer reads chunks, feeds :class:`StreamingPreprocessor`, applies
:func:`apply_montage` at the output rate and scales with a :class:`RobustScaler` fitted on the
training blocks only; band envelopes (``preprocess.bands``) come from :class:`StreamingEnvelopes`.
"""

from .bands import BAND_EDGES, BANDS, StreamingEnvelopes, band_channel_name, min_sfreq, strip_band
from .filters import StreamingPreprocessor, preprocess_array
from .montage import MONTAGES, apply_montage, bipolar_pairs, laplacian_neighbours, parse_contact
from .scaling import SCALING_RULES, RobustScaler, StandardScaler

__all__ = [
    "BANDS",
    "BAND_EDGES",
    "StreamingEnvelopes",
    "band_channel_name",
    "min_sfreq",
    "strip_band",
    "SCALING_RULES",
    "MONTAGES",
    "RobustScaler",
    "StandardScaler",
    "StreamingPreprocessor",
    "apply_montage",
    "laplacian_neighbours",
    "bipolar_pairs",
    "parse_contact",
    "preprocess_array",
]
