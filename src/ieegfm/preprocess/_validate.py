"""Argument checks with MNE-style messages (parameter, expected range, value passed)."""

from __future__ import annotations

import numbers

import numpy as np


def _check_option(parameter: str, value, allowed_values) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed_values`` (as MNE's ``_check_option``)."""
    if value in allowed_values:
        return
    options = ", ".join(repr(v) for v in allowed_values)
    raise ValueError(
        f"Invalid value for the {parameter!r} parameter. Allowed values are {options}, but got {value!r} instead."
    )


def _check_float(
    parameter: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = False,
    high_inclusive: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the given range, or raise ValueError naming it."""
    lo = "-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
    hi = "inf" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
    if low is None:
        lo = "(-inf"
    if high is None:
        hi = "inf)"
    expected = f"a finite number in {lo}, {hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{parameter} must be {expected}, got {value!r}.")
    value = float(value)
    bad_low = low is not None and (value < low or (value == low and not low_inclusive))
    bad_high = high is not None and (value > high or (value == high and not high_inclusive))
    if bad_low or bad_high:
        raise ValueError(f"{parameter} must be {expected}, got {value!r}.")
    return value
