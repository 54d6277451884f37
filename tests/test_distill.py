"""Knowledge distillation (pipeline.nn.distill) on tiny models and hand-made tensors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pipeline.config import TrainConfig
from pipeline.nn import distill, model


def softmax(z, t=1.0):
    e = np.exp(z / t - (z / t).max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def tiny(seed: int) -> keras.Model:
    """Flatten -> Dense 10 softmax: no dropout, so a step is a function of its batch alone."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ]
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((96, 28, 28, 1), np.float32)
    y = rng.integers(0, 10, 96)
    return {"x_train": x[:64], "y_train": y[:64], "x_val": x[64:], "y_val": y[64:]}


TRAIN = TrainConfig(batch_size=16, shift_pixels=2)


def test_loss_is_the_formula():
    rng = np.random.default_rng(1)
    zt, zs = rng.normal(size=(4, 10)) * 3, rng.normal(size=(4, 10))
    labels = np.eye(10)[[1, 4, 4, 9]]
    t, a = 3.0, 0.7
    pt, ps = softmax(zt, t), softmax(zs, t)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(-1)
    ce = -(labels * np.log(softmax(zs))).sum(-1)
    expected = np.mean(a * t**2 * kl + (1 - a) * ce)
    got = distill.loss(labels, softmax(zt).astype(np.float32), softmax(zs).astype(np.float32), t, a)
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_log_probabilities_give_the_softened_distribution_of_the_logits():
    z = np.array([[8.0, -3.0, 0.5, 20.0]], np.float32)
    soft = tf.nn.softmax(distill.log_probabilities(softmax(z).astype(np.float32)) / 4.0)
    np.testing.assert_allclose(soft.numpy(), softmax(z, 4.0), rtol=1e-4)


def test_alpha_zero_is_cross_entropy_and_a_perfect_copy_costs_nothing_soft():
    p = softmax(np.random.default_rng(2).normal(size=(3, 10))).astype(np.float32)
    labels = np.eye(10)[[0, 1, 2]]
    ce = keras.losses.categorical_crossentropy(labels, p).numpy().mean()
    assert float(distill.loss(labels, p[::-1], p, 4.0, 0.0)) == pytest.approx(ce, rel=1e-5)
    assert float(distill.loss(labels, p, p, 4.0, 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_distillation_steps_reduce_the_loss(data):
    student, teacher = tiny(0), tiny(1)
    distiller = distill.Distiller(student, teacher, temperature=4.0, alpha=0.7)
    model.compile_adam(distiller, 1e-2)
    x, y = data["x_train"][:32], keras.utils.to_categorical(data["y_train"][:32], 10)
    first = distiller.train_on_batch(x, y, return_dict=True)["loss"]
    for _ in range(20):
        last = distiller.train_on_batch(x, y, return_dict=True)["loss"]
    assert last < first
    assert all(v.trainable is False for v in teacher.variables) or not teacher.trainable_variables


def test_the_teacher_sees_the_students_shifted_batch(data):
    """A teacher identical to the (all but frozen) student at alpha 1 costs nothing, on the same images only."""
    student = tiny(0)
    teacher = keras.models.clone_model(student)
    teacher.set_weights(student.get_weights())
    history = distill.fit(
        student, teacher, data, TRAIN, temperature=2.0, alpha=1.0, what="t", epochs=1, learning_rate=1e-12, seed=0
    )
    assert history.history["loss"][-1] == pytest.approx(0.0, abs=1e-7)
    assert history.history["val_loss"][-1] > 1  # the student's own cross-entropy, near ln 10 untrained
    x = data["x_train"][:16]
    shifted = np.roll(x, 2, axis=1)
    assert float(distill.loss(np.eye(10)[np.arange(16) % 10], teacher(shifted), student(x), 2.0, 1.0)) > 1e-4


def test_fit_with_pruning_wrappers_keeps_a_plain_student(data, tmp_path):
    import tensorflow_model_optimization as tfmot

    student = tiny(0)
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    pruning = tfmot.sparsity.keras.prune_low_magnitude(student, pruning_schedule=schedule)
    history = distill.fit(
        pruning,
        tiny(1),
        data,
        TRAIN,
        temperature=4.0,
        alpha=0.5,
        what="t",
        epochs=1,
        learning_rate=1e-3,
        seed=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    assert all(value > 0 for value in history.history["loss"])
    stripped = tfmot.sparsity.keras.strip_pruning(pruning)
    assert model.sparsity(stripped) == pytest.approx(0.5, abs=0.01)
    model.save(stripped, tmp_path / "student.keras")
    loaded = model.load(tmp_path / "student.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in stripped.layers]
    np.testing.assert_allclose(loaded.predict(data["x_val"], verbose=0), stripped.predict(data["x_val"], verbose=0))


def test_fit_trains_a_quantisation_aware_student(data):
    import tensorflow_model_optimization as tfmot

    qat = tfmot.quantization.keras.quantize_model(tiny(0))
    before = [w.copy() for w in qat.get_weights()]
    distill.fit(qat, tiny(1), data, TRAIN, temperature=4.0, alpha=0.5, what="t", epochs=1, learning_rate=1e-3, seed=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, qat.get_weights(), strict=True))


def test_without_a_teacher_it_is_plain_fit(data):
    history = distill.fit(
        tiny(0), None, data, TRAIN, temperature=4.0, alpha=0.7, what="t", epochs=1, learning_rate=1e-3, seed=0
    )
    assert "val_accuracy" in history.history
