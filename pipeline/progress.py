"""Progress within an epoch, on a terminal only: a bar with the step count and an ETA.

    callbacks = [*progress.bar("prune", epochs)]   # empty when nobody is watching

The training log keeps its one line per epoch everywhere; the bar is added only when a
person is watching: standard output is a terminal, or ``make`` says its own is
(``MAKE_TERMOUT``: with ``--output-sync`` a stage's output goes through a file, so the bar
is drawn on make's terminal directly). In CI (``CI`` set) or in a pipe there is no bar.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import tf_keras as keras


def terminal() -> TextIO | None:
    """Where to draw a progress bar, or None when nobody is watching."""
    if os.environ.get("CI"):
        return None
    if sys.stdout.isatty():
        return sys.stdout
    name = os.environ.get("MAKE_TERMOUT")
    if name and os.path.exists(name):
        try:
            return open(name, "w")  # noqa: SIM115 (held for the process's life, like sys.stdout)
        except OSError:
            return None
    return None


class _Bar(keras.callbacks.Callback):
    def __init__(self, what: str, epochs: int, stream: TextIO):
        super().__init__()
        self.what, self.epochs, self.stream, self.bar = what, epochs, stream, None

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.params.get("steps"),
            desc=f"[{self.what}] epoch {epoch + 1}/{self.epochs}",
            unit="step",
            file=self.stream,
            leave=False,
            mininterval=0.5,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.bar.update(1)
        if logs and "loss" in logs and batch % 20 == 0:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.bar.close()


def bar(what: str, epochs: int) -> list[keras.callbacks.Callback]:
    """A progress-bar callback for ``model.fit`` when a terminal is watching, else nothing."""
    stream = terminal()
    return [_Bar(what, epochs, stream)] if stream else []
