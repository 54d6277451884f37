"""The image analysis compiled: ``ink.c`` (steps 2-5 of ``runtime.preprocess``) built for this machine and loaded.

    from runtime import native
    core = native.load()             # None when it cannot be built here (no C compiler): use runtime.ink's numpy
    pixels = core.reduce(image, box, factor)      # Pillow's image.reduce(factor, box) as runtime.decode makes it
    ink, box, stroke = core.find(pixels, alpha)   # as runtime.ink's _find, box and stroke width; PreprocessError
    digit = core.centre(ink)                      # float32 [28, 28]

``ink.c`` does in two calls what ``runtime.ink`` does in some hundred numpy calls, whose overhead costs more than the
pixels of a 120 px image: the same 28x28 within float rounding (tests/test_native.py), in 0.2 to 0.85 of the time
(the less, the less of it is decoding; ``python -m runtime.bench_images`` measures both). It is built the first
time it is needed with the machine's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``; C99 and libm, about a
second) into this folder, or into the user's cache folder when that fails, under a name that holds the hash of the
source and flags and the machine's architecture, so an edited source never runs stale. ``RUNTIME_INK=numpy`` keeps
numpy; ``RUNTIME_INK=native`` makes a failed build an error instead of a warning. The page runs this source too,
built for WebAssembly by the web stage (``pipeline/web.py``, ``web/ink.js``).

This module imports nothing but the standard library and numpy.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime.constants import PREPROCESS
from runtime.ink import NO_DIGIT, PreprocessError

SOURCE = Path(__file__).with_name("ink.c")
# No fused multiply-add: numpy rounds each step. -funroll-loops: 6-9% less time per call with gcc (clang unrolls at
# -O3 already); -fno-math-errno: sqrt without a branch for errno, which nothing reads. The page's WebAssembly build
# (pipeline/web.py) uses the same CFLAGS.
CFLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-funroll-loops", "-fno-math-errno")
FLAGS = (*CFLAGS, "-fPIC", "-shared")
CHOICE = "RUNTIME_INK"  # environment: "numpy" or "native"; unset: native when it builds
COMPILERS = ("cc", "gcc", "clang")
MEMORY = 5  # ink.c's code for a failed allocation
PIXEL_BYTES = {"L": 1, "RGB": 4}  # how Pillow stores the modes ink_reduce reads (RGB as RGBX)
log = logging.getLogger(__name__)


class ArrowArray(ctypes.Structure):
    """The Arrow C data interface's array (a stable ABI): how Pillow (11.2 and later) lends its pixel memory."""


ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64), ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))), ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]  # fmt: skip
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


class BuildError(RuntimeError):
    """ink.c could not be built or loaded here; the message says why."""


class Native:
    """The loaded library: ``reduce``, ``find`` and ``centre``, with runtime.preprocess's own arguments and results."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path))
        listed = ctypes.string_at(ctypes.addressof(ctypes.c_char.in_dll(lib, "ink_names"))).decode()
        names = listed.rstrip(",").split(",")
        missing = [n for n in names if n not in PREPROCESS]
        if missing or len(names) != ctypes.c_int.in_dll(lib, "ink_constants").value:
            raise BuildError(f"{path.name}: constants not in preprocess.json: {missing}")
        lib.ink_configure((ctypes.c_double * len(names))(*(PREPROCESS[n] for n in names)))
        self._find, self._centre, self._reduce = lib.ink_find, lib.ink_centre, lib.ink_reduce
        self._find.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 4
        self._centre.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self._reduce.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 7 + [ctypes.c_void_p]
        self.size = int(PREPROCESS["SIZE"])
        self.reduce_max = ctypes.c_int.in_dll(lib, "ink_reduce_max").value  # the largest factor reduce takes

    def reduce(self, image, box: tuple[int, int, int, int], factor: int) -> np.ndarray | None:
        """Pillow's ``image.reduce(factor, box)`` as float32 [h, w, C] v / 255, grey stored as RGB made one channel:
        runtime.decode's Source.region bit for bit, read from the pixels where Pillow keeps them. None when it
        does not apply (not an 8-bit L or RGB image, a factor over ``reduce_max``, or a Pillow that lends no memory)."""
        bytes_ = PIXEL_BYTES.get(image.mode)
        lend = getattr(image, "__arrow_c_array__", None)
        if bytes_ is None or lend is None or factor > self.reduce_max:
            return None
        try:
            capsules = lend()  # kept until the call returns: they hold the memory
        except (ValueError, OSError):  # an image Pillow keeps in several blocks
            return None
        array = ArrowArray.from_address(_capsule_pointer(capsules[1], b"arrow_array"))
        if array.n_children:  # RGB: a list of 4 bytes per pixel, its child the bytes
            array = array.children[0].contents
        if array.offset or array.length != image.size[0] * image.size[1] * bytes_ or not array.buffers[1]:
            return None
        w, h = -(-(box[2] - box[0]) // factor), -(-(box[3] - box[1]) // factor)
        out = np.empty(w * h * 3, np.float32)
        c = self._reduce(array.buffers[1], image.size[0], bytes_, *box, factor, out.ctypes.data)
        if not c:
            raise MemoryError("runtime/native/ink.c: out of memory")
        return out[: w * h * c].reshape(h, w, c)

    def find(self, pixels: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, tuple[int, ...], float]:
        """A region's float pixels [h, w, C] and alpha [h, w] (or None) -> the ink [h, w], its box (left, top,
        right, bottom) and the stroke width of its pixels over INK_CUT; PreprocessError if there is no digit."""
        h, w, c = pixels.shape
        pixels = np.ascontiguousarray(pixels, np.float32)
        alpha = None if alpha is None else np.ascontiguousarray(alpha, np.float32)
        ink = np.empty((h, w), np.float32)
        box, stroke = (ctypes.c_int * 4)(), ctypes.c_double()
        status = self._find(
            pixels.ctypes.data, w, h, c, None if alpha is None else alpha.ctypes.data, ink.ctypes.data, box,
            ctypes.byref(stroke),
        )  # fmt: skip
        _check(status)
        return ink, tuple(box), stroke.value

    def centre(self, ink: np.ndarray) -> np.ndarray:
        """The ink [h, w] cropped, thickened if thin, scaled and centred: float32 [SIZE, SIZE]."""
        ink = np.ascontiguousarray(ink, np.float32)
        out = np.empty((self.size, self.size), np.float32)
        _check(self._centre(ink.ctypes.data, ink.shape[1], ink.shape[0], out.ctypes.data))
        return out


def _check(status: int) -> None:
    if status == MEMORY:
        raise MemoryError("runtime/native/ink.c: out of memory")
    if status:
        raise PreprocessError(NO_DIGIT[status])


def library_name() -> str:
    """The built library's file name: the hash of the source and flags, the machine it is built for (one folder may
    serve an x86 host and an emulated aarch64 device) and the platform's suffix."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    return f"_ink-{digest}-{sys.platform}-{platform.machine().lower()}{'.dll' if sys.platform == 'win32' else '.so'}"


def folders() -> list[Path]:
    """Where the library is looked for and built: beside the source, then the user's cache folder, if there is one
    (a container's user may have no home)."""
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no $HOME and no entry in the user database
        return [SOURCE.parent]
    return [SOURCE.parent, cache / "edge-mnist-runtime"]


def compiler() -> list[str]:
    """The C compiler's command: ``$CC`` (which may hold flags), else the first of COMPILERS on the PATH."""
    tried = [shlex.split(os.environ["CC"])] if os.environ.get("CC", "").strip() else [[c] for c in COMPILERS]
    found = next((c for c in tried if shutil.which(c[0])), None)
    if found is None:
        raise BuildError(f"no C compiler found (tried {', '.join(c[0] for c in tried)}; set CC to name one)")
    return found


def build(folder: Path) -> Path:
    """Compile ink.c into ``folder``; the file appears whole (written aside, then renamed), so processes that
    build at once do not see each other's half-written files."""
    target = folder / library_name()
    folder.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".ink-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        command = [*compiler(), *FLAGS, "-o", scratch, str(SOURCE), "-lm"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BuildError(f"{command[0]} failed on ink.c:\n{done.stderr.strip()[-2000:]}")
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target


@functools.cache
def load() -> Native | None:
    """The compiled analysis, built first if need be; None if it cannot be (a warning, logged once per process,
    says why) or if RUNTIME_INK=numpy. RUNTIME_INK=native makes that an error (BuildError)."""
    choice = os.environ.get(CHOICE, "")
    if choice == "numpy":
        return None
    if choice not in ("", "native"):
        raise BuildError(f"{CHOICE}={choice!r}: expected 'native' or 'numpy'")
    problems = []
    for folder in folders():
        path = folder / library_name()
        built = False
        try:
            if not path.exists():
                built = bool(build(folder))
            return Native(path)
        except (BuildError, OSError) as e:
            problems.append(f"{folder}: {e}")
            if built:  # a compiler for another machine (an emulated one runs the host's): leave nothing that fails
                path.unlink(missing_ok=True)
    message = "runtime/native/ink.c could not be built, so images are preprocessed in numpy (up to 4x slower):\n"
    if choice == "native":
        raise BuildError(message + "\n".join(problems))
    log.warning("%s%s\n(set %s=numpy to choose numpy and silence this)", message, "\n".join(problems), CHOICE)
    return None
