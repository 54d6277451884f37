"""runtime/native/ink.c against runtime.ink's numpy, image by image, and the way runtime.native builds and loads it.

    python -m pytest tests/test_native.py -q

Both cores get the same decoded images (tests/preprocess_cases.py: hand-made ones and every user-style set, the
cases the page's port is held to as well). They compute the same steps in the same precision, so they may differ
by float rounding only: a few ulps where numpy's BLAS sums in another order. That is MAX_DIFF; a rounding that
flips a pixel across a threshold may move one image further, never more than MAX_DIFF_ANY, and never the digit.
The build tests compile the real source with the machine's C compiler, in folders of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from runtime import Classifier, classifier, native
from runtime.decode import Source
from runtime.preprocess import PreprocessError, to_mnist
from tests import preprocess_cases, tiny_onnx

MAX_DIFF = 1e-5  # largest difference of an output pixel on at least SHARE of the images ...
SHARE = 0.99
MAX_DIFF_ANY = 1 / 255  # ... and on every image
ROOT = Path(__file__).resolve().parent.parent


def run(img, core: str) -> np.ndarray | str:
    try:
        return to_mnist(img, core=core)
    except PreprocessError as e:
        return str(e)


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> list[tuple[np.ndarray | str, np.ndarray | str]]:
    if native.load() is None:
        pytest.fail("runtime/native/ink.c did not build here: see the warning above", pytrace=False)
    images = preprocess_cases.cases(tmp_path_factory.mktemp("sets"))
    return [(run(img, "numpy"), run(img, "native")) for img in images]


def test_both_say_no_digit_on_the_same_images_with_the_same_message(both):
    refused = [(a, b) for a, b in both if isinstance(a, str) or isinstance(b, str)]
    assert refused == [(a, a) for a, _ in both if isinstance(a, str)]
    assert len(refused) == preprocess_cases.NO_DIGIT


def test_the_28x28s_agree_to_float_rounding(both):
    diffs = [float(np.abs(a - b).max()) for a, b in both if not isinstance(a, str)]
    assert np.mean(np.array(diffs) <= MAX_DIFF) >= SHARE, sorted(diffs)[-5:]
    assert max(diffs) <= MAX_DIFF_ANY


def test_a_classifier_sees_the_same_digit_in_both(both, tmp_path):
    onnx.save(tiny_onnx.classifier(), tmp_path / "tiny.onnx")
    clf = Classifier(tmp_path / "tiny.onnx")
    pairs = [(a, b) for a, b in both if not isinstance(a, str)]
    assert (
        clf.predict(np.stack([a for a, _ in pairs])).argmax(1) == clf.predict(np.stack([b for _, b in pairs])).argmax(1)
    ).all()


def pillow_region(img: Image.Image, box, longest: int) -> np.ndarray:
    return Source(img).region(box, longest)[0]  # Pillow's reduce: region without the core's


@pytest.fixture(scope="module")
def core() -> native.Native:
    if native.load() is None:
        pytest.fail("runtime/native/ink.c did not build here: see the warning above", pytrace=False)
    return native.load()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_compiled_reduction_gives_pillows_pixels_bit_for_bit(core, mode):
    rng = np.random.default_rng(3)
    for trial in range(120):
        w, h = (int(v) for v in rng.integers(8, 300, 2))
        if trial % 2:  # grey stored as RGB: channels 0-2 apart, which may or may not count as grey
            spread = rng.integers(0, 3 if trial % 4 == 1 else 2, (h, w, 3))
            a = (rng.integers(0, 254, (h, w, 1)) + spread).astype(np.uint8)
        else:
            a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(a if mode == "RGB" else a[..., 0], mode)
        box = (int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2)), int(rng.integers(w // 2 + 1, w + 1)),
               int(rng.integers(h // 2 + 1, h + 1)))  # fmt: skip
        longest = max(box[2] - box[0], box[3] - box[1])
        expected, _, factor = Source(img).region(box, int(rng.integers(longest // core.reduce_max + 1, longest + 1)))
        reduced = core.reduce(img, box, factor)  # factor 1 to 16: mostly with partial blocks at the right and bottom
        assert reduced.dtype == np.float32 and reduced.shape == expected.shape, (trial, reduced.shape, expected.shape)
        assert np.array_equal(reduced, expected), trial


def test_the_compiled_reduction_tells_grey_from_colour_as_numpy_does(core):
    r = np.arange(256).repeat(9)
    other = (r + np.tile(np.arange(-4, 5), 256)).clip(0, 255)
    pixels = np.concatenate([np.stack([r, other, r], 1), np.stack([r, r, other], 1)]).astype(np.uint8)
    for pixel in pixels:  # the first channel and the second, or the third, up to 4 apart
        img = Image.fromarray(np.broadcast_to(pixel, (2, 8, 3)).copy(), "RGB")
        assert core.reduce(img, (0, 0, 8, 2), 1).shape == pillow_region(img, None, 8).shape, pixel


def test_the_compiled_reduction_leaves_what_it_does_not_take_to_pillow(core):
    img = Image.new("RGB", (340, 20), (200, 10, 10))
    assert core.reduce(img, (0, 0, 340, 20), core.reduce_max + 1) is None  # its sums would not fit in 16 bits
    assert core.reduce(img.convert("RGBA"), (0, 0, 340, 20), 2) is None  # alpha: Pillow premultiplies
    assert core.reduce(img.convert("I;16"), (0, 0, 340, 20), 2) is None
    assert np.array_equal(Source(img).region(None, 20, core.reduce)[0], pillow_region(img, None, 20))  # factor 17


def test_transparent_and_array_inputs_go_through_the_native_core_too():
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[10:50, 18:22] = (20, 20, 20, 255)  # a 1 on a fully transparent background
    assert np.abs(to_mnist(rgba, core="native") - to_mnist(rgba, core="numpy")).max() <= MAX_DIFF
    with pytest.raises(PreprocessError, match="fully transparent"):
        to_mnist(np.zeros((60, 40, 4), np.uint8), core="native")


def test_an_unknown_core_is_refused():
    with pytest.raises(ValueError, match="core must be"):
        to_mnist(np.zeros((60, 40), np.uint8), core="fortran")


def test_the_library_is_named_by_its_source_and_flags(monkeypatch, tmp_path):
    name = native.library_name()
    source = tmp_path / "ink.c"
    source.write_bytes(native.SOURCE.read_bytes() + b"\n/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", source)
    assert native.library_name() != name  # an edited source is built anew, never run stale
    monkeypatch.setattr(native, "FLAGS", (*native.FLAGS, "-g"))
    assert len({name, native.library_name()}) == 2


def load_in_subprocess(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """runtime.native.load() in a fresh interpreter (load is cached per process): prints the library or None."""
    code = "from runtime import native; core = native.load(); print(core.path if core else None)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of runtime/ without any built library, so that a build here is this test's own."""
    shutil.copytree(ROOT / "runtime", tmp_path / "runtime", ignore=shutil.ignore_patterns("_ink-*", "__pycache__"))
    return tmp_path


def test_it_builds_beside_the_source_the_first_time_and_loads_after(copy):
    env = os.environ | {"XDG_CACHE_HOME": str(copy / "cache")}
    env.pop(native.CHOICE, None)
    first = load_in_subprocess(env, copy)
    assert first.returncode == 0, first.stderr
    built = Path(first.stdout.strip())
    assert built.parent == copy / "runtime" / "native" and built.name == native.library_name()
    again = load_in_subprocess(env, copy)
    assert again.stdout == first.stdout and not again.stderr
    assert not list((copy / "runtime" / "native").glob(".ink-*"))  # no scratch file left


def test_a_library_that_will_not_load_is_built_again_in_the_users_cache(copy):
    (copy / "runtime" / "native" / native.library_name()).write_bytes(b"\x7fELF truncated")  # a broken copy
    env = os.environ | {"XDG_CACHE_HOME": str(copy / "cache")}
    env.pop(native.CHOICE, None)
    done = load_in_subprocess(env, copy)
    assert Path(done.stdout.strip()).parent == copy / "cache" / "edge-mnist-runtime", done.stderr
    assert not done.stderr


def test_no_compiler_warns_and_falls_back_to_numpy(copy):
    env = os.environ | {"CC": "no-such-compiler", "XDG_CACHE_HOME": str(copy / "cache")}
    env.pop(native.CHOICE, None)
    done = load_in_subprocess(env, copy)
    assert done.returncode == 0 and done.stdout.strip() == "None"
    assert "could not be built" in done.stderr and "no C compiler found" in done.stderr
    assert "RUNTIME_INK=numpy" in done.stderr  # how to choose numpy and silence it


def test_native_asked_for_but_not_buildable_is_an_error(copy):
    env = os.environ | {"CC": "no-such-compiler", "XDG_CACHE_HOME": str(copy / "cache"), native.CHOICE: "native"}
    done = load_in_subprocess(env, copy)
    assert done.returncode != 0 and "BuildError" in done.stderr and "no C compiler found" in done.stderr


def test_numpy_asked_for_builds_nothing(copy):
    env = os.environ | {"CC": "no-such-compiler", native.CHOICE: "numpy"}
    done = load_in_subprocess(env, copy)
    assert done.stdout.strip() == "None" and not done.stderr


def test_a_bad_choice_is_named(copy):
    done = load_in_subprocess(os.environ | {native.CHOICE: "fast"}, copy)
    assert done.returncode != 0 and "expected 'native' or 'numpy'" in done.stderr


def test_without_a_compiler_a_run_with_many_jobs_says_so_once(copy, tmp_path):
    onnx.save(tiny_onnx.classifier(), tmp_path / "tiny.onnx")
    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2 * classifier.BATCH + 1):  # enough for the preprocessing processes to start
        img = np.full((40, 40), 255, np.uint8)
        img[8:32, 18 + rng.integers(-3, 4) : 23] = 0
        Image.fromarray(img).save(folder / f"{i}.png")
    env = os.environ | {"CC": "no-such-compiler", "XDG_CACHE_HOME": str(copy / "cache")}
    env.pop(native.CHOICE, None)
    command = [
        sys.executable,
        "-m",
        "runtime.classify",
        "--jobs",
        "2",
        "--model",
        str(tmp_path / "tiny.onnx"),
        str(folder),
    ]
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 2 * classifier.BATCH + 1
    assert done.stderr.count("could not be built") == 1, done.stderr


def test_a_library_built_for_another_machine_is_not_left_behind(copy, tmp_path):
    fake = tmp_path / "cross-cc"  # a "compiler" whose output this machine cannot load, as an emulated device's would be
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\nprintf "not a library" > "$2"\n')
    fake.chmod(0o755)
    env = os.environ | {"CC": str(fake), "XDG_CACHE_HOME": str(copy / "cache")}
    env.pop(native.CHOICE, None)
    done = load_in_subprocess(env, copy)
    assert done.stdout.strip() == "None" and "could not be built" in done.stderr
    assert not list(copy.rglob("_ink-*"))  # neither beside the source nor in the cache


@pytest.mark.parametrize("command", ["runtime.classify", "runtime.bench_images"])
def test_native_asked_for_but_not_buildable_stops_a_command_in_one_line(copy, tmp_path, command):
    onnx.save(tiny_onnx.classifier(), tmp_path / "tiny.onnx")
    folder = tmp_path / "digits"
    folder.mkdir()
    Image.fromarray(np.pad(np.zeros((24, 6), np.uint8), 12, constant_values=255)).save(folder / "1_0.png")
    env = os.environ | {"CC": "no-such-compiler", "XDG_CACHE_HOME": str(copy / "cache"), native.CHOICE: "native"}
    args = [sys.executable, "-m", command, "--model", str(tmp_path / "tiny.onnx"), str(folder)]
    done = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"python -m {command}: error: " in done.stderr and "no C compiler found" in done.stderr


def test_a_user_without_a_home_still_gets_the_folder_beside_the_source(monkeypatch):
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", no_home)
    assert native.folders() == [native.SOURCE.parent]
