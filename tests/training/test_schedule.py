import math

import pytest

from ieegfm.training.schedule import warmup_cosine


def test_warmup_cosine_rises_linearly_then_decays_to_zero():
    assert [warmup_cosine(s, warmup=4, total=12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine(4, warmup=4, total=12) == 1.0
    assert warmup_cosine(8, warmup=4, total=12) == pytest.approx(0.5)
    assert warmup_cosine(12, warmup=4, total=12) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(50, warmup=4, total=12) == pytest.approx(0.0, abs=1e-12)  # stays 0 past the end
    assert warmup_cosine(0, warmup=0, total=10) == 1.0 and warmup_cosine(5, warmup=0, total=10) == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 2))
    )
