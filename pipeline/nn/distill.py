"""Knowledge distillation: a student fine-tunes on the labels and on a frozen teacher's softened outputs.

    from pipeline.nn import distill
    distill.fit(student, teacher, data, cfg.train, what="structured", epochs=12, learning_rate=2e-3,
                seed=1235, temperature=4.0, alpha=0.7, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])

The loss (Hinton et al., 2015) is ``alpha * T**2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) *
CE(labels, softmax(s))`` with ``t``, ``s`` the teacher's and the student's logits; ``T**2`` keeps the
soft term's gradients on the scale of the hard one's as ``T`` grows.

The models end in a softmax (``probabilities``), whose input is not a tensor of its own: the
activation is fused into the last Dense layer, and tfmot's pruning and quantisation wrappers
wrap that layer whole. So the logits are recovered as ``log(p)``, which differs from them only
by a constant per image (log-sum-exp), and softmax ignores such a constant: ``softmax(log(p) / T)``
equals ``softmax(logits / T)`` exactly, for a plain, pruned or quantisation-aware model alike.
``p`` is clipped at ``EPSILON`` first; a class below it has no weight at any useful ``T``.

The teacher runs inside the training step on the very batch the student sees, so it sees the
same random shifts of ``model.ShiftedImages``. The wrapper (``Distiller``) is never saved:
the student is trained in place and stays a plain (or pruning-/QAT-wrapped) Keras model.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from pipeline.config import TrainConfig
from pipeline.nn import model

EPSILON = 1e-30  # probabilities are clipped here before the log (float32 keeps ~1e-38)


def log_probabilities(p: tf.Tensor) -> tf.Tensor:
    """Logits up to a per-row constant: enough for any softmax of them."""
    return tf.math.log(tf.clip_by_value(p, EPSILON, 1.0))


def loss(labels: tf.Tensor, teacher: tf.Tensor, student: tf.Tensor, temperature: float, alpha: float) -> tf.Tensor:
    """Mean over the batch of the distillation loss; ``teacher``/``student`` are probabilities,
    ``labels`` one-hot."""
    t, s = log_probabilities(teacher), log_probabilities(student)
    soft_t = tf.nn.softmax(t / temperature)
    kl = tf.reduce_sum(soft_t * (tf.nn.log_softmax(t / temperature) - tf.nn.log_softmax(s / temperature)), axis=-1)
    ce = -tf.reduce_sum(tf.cast(labels, s.dtype) * tf.nn.log_softmax(s), axis=-1)
    return tf.reduce_mean(alpha * temperature**2 * kl + (1.0 - alpha) * ce)


class Distiller(keras.Model):
    """Trains ``student`` on ``loss`` against the frozen ``teacher``. Validation runs the student
    alone: its ``loss`` there is the plain cross-entropy, beside the metrics it is compiled with."""

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float, alpha: float):
        super().__init__(name=f"distilling_{student.name}")
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"temperature={temperature} must be > 0 and alpha={alpha} in [0, 1]")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        # Our own "loss" tracker, not the compiled loss's: fit reports these metrics' results,
        # and the compiled loss (cross-entropy) is not what trains the student.
        return [self.loss_tracker, *self.compiled_metrics.metrics]

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, y = data
        soft = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            p = self.student(x, training=True)
            value = loss(y, soft, p, self.temperature, self.alpha)
            total = value + tf.add_n(self.student.losses) if self.student.losses else value
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        return self._update(y, p, value)

    def test_step(self, data):
        x, y = data
        p = self.student(x, training=False)
        return self._update(y, p, tf.reduce_mean(keras.losses.categorical_crossentropy(y, p)))

    def _update(self, y, p, value) -> dict:
        self.loss_tracker.update_state(value)
        self.compiled_metrics.update_state(y, p)
        return {m.name: m.result() for m in self.metrics}


def fit(
    student: keras.Model,
    teacher: keras.Model | None,
    data: dict,
    train: TrainConfig,
    *,
    temperature: float,
    alpha: float,
    **kwargs,
) -> keras.callbacks.History:
    """``model.fit`` (same arguments: ``what``, ``epochs``, ``learning_rate``, ``seed``, ``warmup_epochs``,
    ``callbacks``), training ``student`` by distillation from ``teacher``; without a teacher, or
    with ``alpha`` 0, plain ``model.fit``."""
    if teacher is None or alpha == 0:
        return model.fit(student, data, train, **kwargs)
    return model.fit(Distiller(student, teacher, temperature, alpha), data, train, **kwargs)
