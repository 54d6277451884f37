"""The damage report on hand-made probabilities: flips both ways, per-class change, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.reporting import damage


def one_hot(pred: list[int], confidence: float) -> np.ndarray:
    p = np.full((len(pred), 10), (1 - confidence) / 9, np.float32)
    p[np.arange(len(pred)), pred] = confidence
    return p


def test_flips_and_per_class_change_are_counted_digit_by_digit():
    y = np.array([0, 0, 1, 1, 2])
    base = one_hot([0, 0, 1, 7, 2], 0.9)  # wrong on image 3
    model = one_hot([0, 5, 1, 1, 2], 0.9)  # wrong on image 1, right on 3
    d = damage.compare(y, base, model)
    assert d["right_to_wrong"] == [1] and d["wrong_to_right"] == [3]
    assert d["per_class_delta_pp"][:3] == [-50.0, 50.0, 0.0]
    assert np.isnan(d["per_class"][9])  # no image of that class


def test_a_perfectly_calibrated_model_has_no_calibration_error_and_an_overconfident_one_does():
    y = np.array([0] * 8 + [1] * 2)
    right_8_of_10 = [0] * 8 + [0, 0]  # 80 % right
    assert damage.compare(y, one_hot(right_8_of_10, 0.8), one_hot(right_8_of_10, 0.8))["ece"] == pytest.approx(0.0)
    overconfident = damage.compare(y, one_hot(right_8_of_10, 0.8), one_hot(right_8_of_10, 1.0))
    assert overconfident["ece"] == pytest.approx(0.2) and overconfident["ece_baseline"] == pytest.approx(0.0)


def test_the_reliability_curve_counts_every_image_once():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), 500).astype(np.float32)
    curve = damage.reliability(rng.integers(0, 10, 500), p)
    assert sum(b["count"] for b in curve) == 500
    assert all(0 <= b["accuracy"] <= 1 and 0 < b["confidence"] <= 1 for b in curve)
