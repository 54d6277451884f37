"""Sensitivity analysis (pipeline.sensitivity) and the per-layer rules derived from it (pipeline.nn.allocate)."""

import json

import numpy as np
import pytest

from pipeline import config, sensitivity
from pipeline.nn import allocate, model


@pytest.fixture(scope="module")
def net():
    """The larger CNN with seeded random weights: the measurements are about mechanics, not MNIST."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return model.build()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((40, 28, 28, 1), np.float32), rng.integers(0, 10, 40)


def handmade(pruning: dict, narrowing: dict | None = None) -> dict:
    """A sensitivity file with a 0.99 baseline; ``pruning``: {layer: [accuracy at 0.5, 0.75, 0.9]}."""
    sizes = {"conv1": 750, "conv2": 4050, "dense1": 48000, "dense2": 6400, "probabilities": 500}
    return {
        "val_accuracy": 0.99,
        "kernel_weights": {name: sizes[name] for name in pruning},
        "pruning": {
            name: [{"sparsity": s, "val_accuracy": a} for s, a in zip((0.5, 0.75, 0.9), accs, strict=True)]
            for name, accs in pruning.items()
        },
        "narrowing": {
            name: [{"width": w, "val_accuracy": a} for w, a in points] for name, points in (narrowing or {}).items()
        },
    }


def test_magnitude_pruning_zeroes_the_smallest_weights():
    kernel = np.array([[0.5, -0.1], [0.3, -2.0]], np.float32)
    np.testing.assert_array_equal(sensitivity.magnitude_pruned(kernel, 0.5), [[0.5, 0], [0, -2.0]])
    assert (sensitivity.magnitude_pruned(kernel, 0.0) == kernel).all()


def test_weights_are_quantised_per_output_channel_to_127_levels_a_side():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    kernel[..., 2] *= 100  # one loud channel must not coarsen the others
    q = sensitivity.quantised_weights(kernel)
    scale = np.abs(kernel).reshape(-1, 5).max(axis=0) / 127
    np.testing.assert_allclose(np.abs(q).reshape(-1, 5).max(axis=0), 127 * scale, rtol=1e-6)
    assert (np.abs(q - kernel) <= scale / 2 + 1e-6).all()
    levels = np.round(q / scale)
    np.testing.assert_allclose(q / scale, levels, atol=1e-3)


def test_forward_matches_keras_and_quantises_the_chosen_output(net, images):
    x, _ = images
    logits = sensitivity.forward(net, x, 16)
    np.testing.assert_allclose(
        np.exp(logits) / np.exp(logits).sum(1, keepdims=True), net.predict(x, verbose=0), atol=1e-5
    )
    ranges = {}
    sensitivity.forward(net, x, 16, ranges=ranges)
    assert set(ranges) == set(sensitivity.LAYERS) and ranges["conv1"][0] == 0.0  # a ReLU output
    lo, hi = ranges["probabilities"]
    q = sensitivity.forward(net, x, 16, quantise={"probabilities": (lo, hi)})
    step = (hi - lo) / 255
    assert len(np.unique(np.round(q / step, 3))) < len(np.unique(logits))
    assert np.abs(q - logits).max() <= step


def test_measure_covers_every_layer_and_width(net, images):
    x, y = images
    data = {"x_val": x, "y_val": y, "x_train": x}
    found = sensitivity.measure(net, data, config.SensitivityConfig(sparsities=(0.5,), width_fractions=(0.5,)))
    json.dumps(found)  # the stage writes it as JSON
    assert list(found["pruning"]) == list(sensitivity.LAYERS)
    (narrowed,) = found["narrowing"]["conv1"]
    assert narrowed["width"] == 15 and 0.0 <= narrowed["val_accuracy"] <= 1.0
    assert [len(v["order"]) for v in found["l1_ranking"].values()] == list(model.WIDTHS)
    norms = found["l1_ranking"]["dense1"]["norms"]
    assert norms == sorted(norms, reverse=True)


def test_sparsity_goes_to_the_least_sensitive_weights_first():
    s = handmade({"conv1": (0.98, 0.90, 0.50), "dense1": (0.99, 0.989, 0.97), "probabilities": (0.90, 0.5, 0.2)})
    total = sum(s["kernel_weights"].values())
    found = allocate.sparsities(s, 0.6)
    assert set(found) == {"dense1"}  # the cheap half of dense1 alone reaches 60 % overall
    assert found["dense1"] * 48000 == pytest.approx(0.6 * total, rel=1e-3)
    found = allocate.sparsities(s, 0.88)
    assert sum(found[n] * s["kernel_weights"][n] for n in found) == pytest.approx(0.88 * total, rel=1e-3)
    assert found["dense1"] == 0.9 and 0 < found["conv1"] < 0.5 and "probabilities" not in found


def test_a_sparsity_beyond_the_measured_range_is_refused():
    with pytest.raises(ValueError, match="beyond the measured"):
        allocate.sparsities(handmade({"dense1": (0.99, 0.99, 0.99)}), 0.95)


def test_a_non_convex_curve_is_taken_at_its_convex_hull():
    """A layer that is free to 75 % but then falls off must not be skipped for a dearer one."""
    s = handmade({"conv2": (0.9899, 0.9898, 0.5), "dense2": (0.985, 0.98, 0.97)})
    found = allocate.sparsities(s, 0.1)
    assert set(found) == {"conv2"}


CURVES = {
    "conv1": [(6, 0.4), (12, 0.7), (18, 0.97), (24, 0.99)],
    "conv2": [(3, 0.7), (6, 0.9), (9, 0.95), (12, 0.985)],
    "dense1": [(26, 0.4), (51, 0.7), (77, 0.9), (102, 0.987)],
    "dense2": [(10, 0.5), (20, 0.92), (30, 0.985), (40, 0.99)],
}


def test_widths_meet_the_budget_with_one_shared_threshold():
    s = handmade({}, CURVES)
    assert allocate.widths(s, max_parameters=10**6) == (24, 15, 128, 40)  # what costs nothing goes anyway
    loose, tight = allocate.widths(s, max_parameters=30000), allocate.widths(s, max_parameters=15000)
    assert allocate.parameters(tight) <= 15000 < allocate.parameters(loose) <= 30000
    assert all(t <= lo for t, lo in zip(tight, loose, strict=True))
    assert allocate.widths(s, max_parameters=30000, max_macs=300000) != loose
    with pytest.raises(ValueError, match="no measured widths"):
        allocate.widths(s, max_parameters=1000)


def test_an_arena_budget_caps_the_first_conv_only():
    s = handmade({}, CURVES)
    free = allocate.widths(s, max_parameters=30000)
    capped = allocate.widths(s, max_parameters=30000, max_activation_bytes=12 * 720)
    assert capped[0] == 12 < free[0] and capped[1:] == free[1:]
    assert allocate.activation_bytes(capped) <= 12 * 720 < allocate.activation_bytes((13, *capped[1:]))


@pytest.mark.parametrize("widths", [model.WIDTHS, (16, 12, 64, 32), (5, 3, 7, 2)])
def test_parameter_and_mac_counts_are_the_models(widths):
    net = model.build(widths)
    assert allocate.parameters(widths) == net.count_params()
    assert allocate.macs(widths) == model.macs(net)
    assert allocate.FULL == model.WIDTHS


def test_table_and_plot_for_the_report(tmp_path):
    s = handmade({"conv1": (0.98, 0.9, 0.5), "dense1": (0.99, 0.98, 0.9)})
    s["quantisation"] = {"per_layer": {"conv1": 0.99, "dense1": 0.989}, "all_layers": 0.988}
    rows = sensitivity.table(s)
    assert rows[0] == {
        "layer": "conv1",
        "weights": 750,
        "pruned 50%": 1.0,
        "pruned 75%": 9.0,
        "pruned 90%": 49.0,
        "int8": 0.0,
    }
    sensitivity.plot(s, tmp_path / "sensitivity.png")
    assert (tmp_path / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_stage_measured_the_smoke_baseline(smoke_artifacts, smoke_config):
    """What `make all` wrote in the smoke run (the stage is not run a second time)."""
    found = json.loads((smoke_artifacts / "sensitivity.json").read_text())
    assert found["val_images"] == smoke_config.data.validation_size
    dense = found["pruning"]["dense1"]
    assert dense[0]["val_accuracy"] >= dense[-1]["val_accuracy"]  # 50 % costs no more than 95 %
    assert abs(found["quantisation"]["all_layers"] - found["val_accuracy"]) < 0.02  # int8 is nearly free
    assert (smoke_artifacts / "records" / "sensitivity.json.json").is_file()
    allocate.widths(found, max_parameters=24000)
    assert allocate.sparsities(found, smoke_config.prune.final_sparsity)


def test_the_override_shares_the_sparsity_evenly_over_the_other_layers():
    sizes = {"conv1": 100, "dense1": 700, "probabilities": 200}
    assert allocate.uniform_sparsities(sizes, 0.56, ("conv1", "probabilities")) == {"dense1": 0.8}
    with pytest.raises(ValueError, match="cannot be reached"):
        allocate.uniform_sparsities(sizes, 0.8, ("conv1", "probabilities"))
