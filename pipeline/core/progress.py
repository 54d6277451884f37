"""Progress within an epoch, for a person at a terminal: a bar line with steps and time left.

    callbacks = [*progress.bar("prune", epochs)]   # empty when nobody is watching

The training log keeps its one line per epoch everywhere. When standard output is a
terminal (and ``CI`` is not set), a line like

    [prune] epoch 2/6 [#######-------------]  35%  137/352 steps, 12 s left in the epoch, ~1 min 40 s in all

follows every few seconds. Lines, not a redrawn bar: with ``make -j`` several stages write
to the same terminal, and whole lines stay readable where carriage-return bars garble.
In CI or a pipe there is nothing but the epoch lines.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import tf_keras as keras

log = logging.getLogger("pipeline.core.progress")
EVERY = 5.0  # seconds between two progress lines
WIDTH = 20  # characters of the bar


def watched() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


class _Lines(keras.callbacks.Callback):
    def __init__(self, what: str, epochs: int):
        super().__init__()
        self.what, self.epochs = what, epochs

    def on_train_begin(self, logs=None) -> None:
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch, self.epoch_started, self.shown = epoch, time.monotonic(), time.monotonic()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        now, steps = time.monotonic(), self.params.get("steps") or 0
        if now - self.shown < EVERY or not steps:
            return
        self.shown, done = now, batch + 1
        per_step = (now - self.epoch_started) / done
        left = per_step * (steps - done)
        total_left = left + per_step * steps * (self.epochs - self.epoch - 1)
        filled = round(WIDTH * done / steps)
        log.info(
            "%s epoch %d/%d [%s] %3.0f%%  %d/%d steps, %s left in the epoch, ~%s in all",
            self.what,
            self.epoch + 1,
            self.epochs,
            "#" * filled + "-" * (WIDTH - filled),
            100 * done / steps,
            done,
            steps,
            _duration(left),
            _duration(total_left),
        )


def bar(what: str, epochs: int) -> list[keras.callbacks.Callback]:
    """A progress callback for ``model.fit`` when a person is watching, else nothing."""
    return [_Lines(what, epochs)] if watched() else []
