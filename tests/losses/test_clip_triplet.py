"""Neuro2Semantic's CLIP + triplet loss: its parts, duplicates as positives, and that it trains an alignment."""

import math

import pytest
import torch

from ieegfm.losses.clip_triplet import ClipTripletLoss


def test_parts_and_weights():
    torch.manual_seed(0)
    b, t = torch.randn(6, 4), torch.randn(6, 4)
    parts = ClipTripletLoss(alpha=0.25)(b, t)
    assert parts["loss"] == pytest.approx(0.25 * parts["clip"] + 0.75 * parts["triplet"])
    assert ClipTripletLoss(alpha=1.0)(b, t)["loss"] == pytest.approx(parts["clip"])
    # perfect, well separated pairs: triplet at zero, CLIP near its floor
    t = torch.eye(4) * 10
    p = ClipTripletLoss(margin=1.0)(t.clone(), t)
    assert p["triplet"] == 0.0 and p["clip"] < 1e-3
    # identical rows: chance CLIP = log(batch)
    same = ClipTripletLoss()(torch.ones(5, 3), torch.ones(5, 3))
    assert same["clip"] == pytest.approx(math.log(5), rel=1e-5)


def test_a_sentence_heard_twice_is_not_its_own_negative():
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1: the same sentence
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    loss = ClipTripletLoss(temperature=0.1)
    with_dup = loss(t.clone(), t, same)
    assert with_dup["triplet"] == 0.0  # only the other sentence is a negative (distance sqrt 2 > margin 1)
    assert loss(t.clone(), t)["triplet"] > 0  # without the mask the duplicate is a violating negative


def test_it_learns_a_linear_alignment():
    torch.manual_seed(0)
    w = torch.randn(8, 5)
    x = torch.randn(256, 8)
    y = torch.nn.functional.normalize(x @ w, dim=-1)
    model = torch.nn.Linear(8, 5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = ClipTripletLoss()
    first = loss(model(x), y)["loss"].item()
    for _ in range(300):
        opt.zero_grad()
        out = loss(model(x), y)["loss"]
        out.backward()
        opt.step()
    assert out.item() < 0.3 * first


@pytest.mark.parametrize("kw", [{"alpha": 1.5}, {"temperature": 0.0}, {"margin": -1.0}])
def test_bad_values(kw):
    with pytest.raises(ValueError):
        ClipTripletLoss(**kw)
