"""Structured pruning: which filters survive, and that slicing keeps the function it should."""

import numpy as np
import pytest

from pipeline import structured
from pipeline.nn import model


@pytest.fixture(scope="module")
def baseline():
    """The larger CNN with seeded random weights: slicing is about shapes and which channels survive."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return model.build()


def test_strongest_keeps_the_largest_l1_channels_in_order():
    kernel = np.zeros((3, 3, 2, 5), np.float32)
    kernel[..., 4] = 1.0
    kernel[..., 1] = -2.0  # the sign does not matter, the magnitude does
    kernel[0, 0, 0, 3] = 0.5
    assert structured.strongest(kernel, 2).tolist() == [1, 4]
    assert structured.strongest(kernel, 3).tolist() == [1, 3, 4]


def test_narrowing_to_full_width_is_the_identity(baseline):
    same = structured.narrow(baseline, model.WIDTHS)
    x = np.random.default_rng(0).random((64, 28, 28, 1), np.float32)
    np.testing.assert_allclose(same.predict(x, verbose=0), baseline.predict(x, verbose=0), atol=1e-6)


def test_narrowing_removes_filters_units_and_their_inputs(baseline):
    small = structured.narrow(baseline, (8, 6, 20, 10))
    assert small.get_layer("conv1").kernel.shape == (5, 5, 1, 8)
    assert small.get_layer("conv2").kernel.shape == (3, 3, 8, 6)
    assert small.get_layer("dense1").kernel.shape == (5 * 5 * 6, 20)
    assert small.get_layer("probabilities").kernel.shape == (10, 10)
    assert model.macs(small) < model.macs(baseline) / 3
    full = baseline.get_layer("conv1").kernel.numpy()
    kept = structured.strongest(full, 8)
    np.testing.assert_array_equal(small.get_layer("conv1").kernel.numpy(), full[..., kept])


def test_widths_beyond_the_baseline_are_refused(baseline):
    with pytest.raises(Exception, match=r"must not exceed the baseline's \(30, 15, 128, 50\)"):
        structured.narrow(baseline, (31, 15, 128, 50))


@pytest.mark.slow
def test_structured_model_is_smaller_and_sparse(smoke_artifacts, smoke_config):
    net = model.load(smoke_artifacts / "structured.keras")
    assert model.macs(net) < model.macs(model.build()) / 2
    assert model.sparsity(net) >= smoke_config.structured.fine_tune.final_sparsity - 0.005
