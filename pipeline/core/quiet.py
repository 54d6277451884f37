"""Keep third-party chatter out of the pipeline's output, and let real warnings through.

    with quiet.third_party_chatter_filtered():
        import tensorflow  # its C++ start-up notices are dropped

TensorFlow, LiteRT, the TFLite converter and onnxruntime print from C++ straight to the
process's standard error, before (or outside) any log level applies. This passes file
descriptor 2 through a filter that drops CHATTER lines and keeps everything else; standard
output is left alone, so a progress bar still sees its terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

# The oneDNN notice, "no CUDA" errors on a machine without a GPU, a tf.data attribute warning,
# the XNNPACK notice, the TFLite converter's quantisation summary, and onnxruntime's notes on
# session options and initialisers it folds. Real errors still get through.
CHATTER = re.compile(
    rb"^(\x1b\[[0-9;]*m)?("
    rb"WARNING: All log messages before absl::InitializeLog"
    rb"|[IWE]0000 [\d:. ]+\d+ (port|cudart_stub|cuda_platform|node_def_util)\.cc:\d+\]"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|fully_quantize: \d+, inference_type: \d+"
    rb"|[\d-]+ [\d:.]+ \[W:onnxruntime:[^\]]*(config_options|graph)\.cc:\d+"
    rb")"
)
NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "tf2onnx", "onnx2tf")


def _pump(read_end: int, out_fd: int) -> None:
    with os.fdopen(read_end, "rb") as lines, os.fdopen(out_fd, "wb") as out:
        for line in lines:
            if not CHATTER.match(line):
                out.write(line)
                out.flush()


@contextlib.contextmanager
def third_party_chatter_filtered(fds: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Pass this process's ``fds`` (standard error) through a filter that drops CHATTER lines."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved, threads = {}, []
    for fd in fds:
        read_end, write_end = os.pipe()
        saved[fd] = os.dup(fd)
        os.dup2(write_end, fd)
        os.close(write_end)
        thread = threading.Thread(target=_pump, args=(read_end, os.dup(saved[fd])), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, real in saved.items():
            os.dup2(real, fd)  # closes the pipe's last write end: the pump sees EOF
            os.close(real)
        for thread in threads:
            thread.join(timeout=5)


def quiet_python_loggers() -> None:
    """Libraries' own INFO chatter off; converters' deprecation notices about their defaults off."""
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite\..*")
