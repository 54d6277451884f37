"""runtime.classify and runtime.classifier: the device's command line and API, on the smoke pipeline's models.

The accuracy tests classify digits made in every style the runtime promises to handle (tests/digits.py);
the robustness tests run ``python -m runtime.classify`` on each bad input next to good ones. The tests of
unusable models need no trained model: they break a tiny one built in the test, and feed a hand-drawn digit.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from runtime import Classifier, ModelError
from runtime.metadata import ModelSpec
from runtime.preprocess import PreprocessError, mnist_to_float, to_mnist
from tests import digits, tiny_onnx

ROOT = Path(__file__).resolve().parent.parent
# The deployed copy, float, both int8 encodings (ORT's QDQ and TFLite's, as uint8) and int8 weights behind
# float compute (NCHW input, logits out): every form of the metadata_props contract.
ONNX_ARTIFACTS = [
    "model.onnx",
    "baseline_fp32.onnx",
    "baseline_ptq_int8.onnx",
    "pruned_qat_int8.onnx",
    "structured_w8.onnx",
]
PER_STYLE = 50  # images per style


def allowed_drop(mnist_accuracy: float, typeset: bool) -> float:
    """How far below its accuracy on the MNIST digits a style may fall: 5 of 50 images, more for a weak model
    (the smoke models are trained briefly), and more for fonts, which MNIST has never shown the model."""
    return (0.25 if typeset else 0.1) + 0.5 * (1 - mnist_accuracy)


def run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "runtime.classify", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


@pytest.fixture(scope="module", params=ONNX_ARTIFACTS)
def classifier(request, smoke_artifacts) -> Classifier:
    return Classifier(smoke_artifacts / request.param)


@pytest.fixture(scope="module")
def styled(mnist, tmp_path_factory) -> dict[str, tuple[list[Path], np.ndarray, np.ndarray]]:
    """Per style: the image files, their true digits and their preprocessed 28x28s (made once)."""
    made = {}
    for style in digits.STYLES:
        cases = digits.write_style(style, mnist, PER_STYLE, tmp_path_factory.mktemp(style))
        paths = [path for path, _ in cases]
        made[style] = paths, np.array([label for _, label in cases]), np.stack([to_mnist(p) for p in paths])
    return made


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    """A 7 drawn with two strokes, black on white: a readable image for tests of everything but accuracy."""
    canvas = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(canvas).line([(50, 50), (150, 50), (90, 160)], fill=0, width=14)
    path = tmp_path_factory.mktemp("drawn") / "seven.png"
    canvas.save(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    path.write_bytes(tiny_onnx.classifier().SerializeToString())
    return path


@pytest.fixture(scope="module")
def good(mnist, tmp_path_factory) -> tuple[Path, int]:
    """A digit drawn black on white, off-centre, at 300x200: the everyday input."""
    canvas = Image.new("L", (300, 200), 255)
    canvas.paste(0, (40, 30), Image.fromarray(mnist["x_test"][0]).resize((120, 120), Image.Resampling.BICUBIC))
    path = tmp_path_factory.mktemp("good") / "digit.png"
    canvas.save(path)
    return path, int(mnist["y_test"][0])


@pytest.mark.parametrize("style", list(digits.STYLES))
def test_each_style_is_classified(classifier, styled, mnist, style):
    """Drawings, photos, ... of MNIST test digits (fonts for "typeset") are classified about as well as the
    MNIST digits themselves. (With the default run's models, at 99.4% on MNIST: 98.7% or more in every style,
    over 300 images each.)"""
    _, labels, images = styled[style]
    accuracy = float(np.mean(classifier.predict(images).argmax(1) == labels))
    reference = classifier.predict(mnist_to_float(mnist["x_test"][:PER_STYLE])).argmax(1)
    mnist_accuracy = float(np.mean(reference == mnist["y_test"][:PER_STYLE]))
    message = f"{classifier.path.name}: {accuracy:.0%} of {style} digits, {mnist_accuracy:.0%} of MNIST's"
    assert accuracy >= mnist_accuracy - allowed_drop(mnist_accuracy, style == "typeset"), message


def test_the_api_takes_paths_images_and_arrays(classifier, good):
    path, digit = good
    predictions = list(classifier.classify_many([path, str(path), Image.open(path), np.asarray(Image.open(path))]))
    assert [p.digit for p in predictions] == [digit] * 4
    top = predictions[0].top
    assert predictions[0].confidence == top[0][1] and len(top) == 10 and abs(sum(p for _, p in top) - 1) < 0.02
    assert [d for d, _ in top] == [d for d, _ in sorted(top, key=lambda t: -t[1])]


def test_a_failed_image_does_not_cost_the_others(smoke_artifacts, good, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    classifier = Classifier(smoke_artifacts / "model.onnx")
    first, failed, last = classifier.classify_many([good[0], blank, good[0]])
    assert first.digit == last.digit == good[1] and isinstance(failed, PreprocessError)
    with pytest.raises(PreprocessError, match="no digit found"):
        classifier.classify(blank)


def test_cli_plain_top_and_json(smoke_artifacts, good):
    path, digit = good
    model = str(smoke_artifacts / "model.onnx")
    plain = run("--model", model, str(path))
    assert plain.returncode == 0 and plain.stderr == ""
    assert plain.stdout.startswith(f"{path}: {digit} (") and plain.stdout.count("%") == 1
    top = run("--model", model, "--top", "3", str(path))
    assert top.returncode == 0 and top.stdout.count("%") == 3
    record = json.loads(run("--model", model, "--json", "--top", "2", str(path)).stdout)
    assert record["image"] == str(path) and record["digit"] == digit and len(record["top"]) == 2
    assert record["top"][0] == [digit, record["confidence"]] and 0 < record["confidence"] <= 1


def test_cli_default_model_comes_from_the_repo_root_or_the_environment(smoke_artifacts, good, tmp_path):
    env = {**os.environ, "RUNTIME_MODEL": str(smoke_artifacts / "model.onnx")}
    done = run(str(good[0]), env=env, cwd=tmp_path)
    assert done.returncode == 0 and f": {good[1]} (" in done.stdout
    env = {k: v for k, v in os.environ.items() if k != "RUNTIME_MODEL"}
    done = run(str(good[0]), env=env, cwd=tmp_path)  # run from elsewhere: still the repo's artifacts/model.onnx
    deployed = ROOT / "artifacts" / "model.onnx"
    if deployed.exists():
        assert done.returncode == 0 and f": {good[1]} (" in done.stdout
    else:
        assert done.returncode == 2 and done.stderr.startswith(f"{deployed}: error: no such model file")
    done = run("--help", env=env, cwd=tmp_path)
    assert done.returncode == 0 and "RUNTIME_MODEL" in done.stdout and "artifacts/model.onnx" in done.stdout


def test_cli_a_directory_means_its_images_sorted(smoke_artifacts, good, tmp_path):
    for name in ("b.png", "a.JPG", "c.gif"):
        Image.open(good[0]).convert("RGB").save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image, and not looked at")
    done = run("--model", str(smoke_artifacts / "model.onnx"), "--json", str(tmp_path))
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and [Path(r["image"]).name for r in records] == ["a.JPG", "b.png", "c.gif"]


BAD_INPUTS = ["missing file", "directory with no images", "non-image file", "truncated PNG", "0-byte file"]
BAD_INPUTS += ["1x1 image", "blank image", "20000x20000 image"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_a_bad_image_is_one_error_line_and_the_rest_are_classified(smoke_artifacts, good, tmp_path, case):
    bad, message = digits.bad_images(tmp_path, good[0])[case]
    done = run("--model", str(smoke_artifacts / "model.onnx"), str(good[0]), str(bad), str(good[0]))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{bad}: error: ") and re.search(message, done.stderr)
    assert done.stdout.splitlines() == [done.stdout.splitlines()[0]] * 2 and f": {good[1]} (" in done.stdout
    record = json.loads(run("--model", str(smoke_artifacts / "model.onnx"), "--json", str(bad)).stdout)
    assert record["image"] == str(bad) and re.search(message, record["error"])


def test_cli_refuses_a_decompression_bomb_in_bounded_memory(smoke_artifacts, tmp_path):
    """A 20 000 x 20 000 PNG (400 M pixels, 50 KB on disk) is refused from its header, never decoded."""
    bomb = digits.bomb_png(tmp_path / "bomb.png")
    code = (  # VmHWM: this process's peak RSS (ru_maxrss would count the forking parent's pages too)
        "import re, runpy, sys\n"
        f"sys.argv = ['classify', '--model', {str(smoke_artifacts / 'model.onnx')!r}, {str(bomb)!r}]\n"
        "try:\n    runpy.run_module('runtime.classify', run_name='__main__')\n"
        "except SystemExit as e:\n    status = e.code\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "print(status, int(peak) // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    status, peak_mb = map(int, done.stdout.split()[-2:])
    assert status == 1 and "image too large" in done.stderr and peak_mb < 150


@pytest.mark.parametrize("kind", ["16-bit", "palette"])
def test_cli_16_bit_and_palette_pngs_are_classified(smoke_artifacts, mnist, tmp_path, kind):
    x = Image.fromarray(255 - mnist["x_test"][0]).resize((200, 200), Image.Resampling.BICUBIC)
    img = Image.fromarray(np.asarray(x).astype(np.uint16) * 257) if kind == "16-bit" else x.convert("P", colors=8)
    img.save(tmp_path / "digit.png")
    assert Image.open(tmp_path / "digit.png").mode == ("I;16" if kind == "16-bit" else "P")
    done = run("--model", str(smoke_artifacts / "model.onnx"), str(tmp_path / "digit.png"))
    assert done.returncode == 0 and f": {int(mnist['y_test'][0])} (" in done.stdout


def _bad_models(folder: Path, model: Path) -> dict[str, tuple[Path, str]]:
    import onnx
    from onnx import TensorProto, helper

    (folder / "garbage.onnx").write_bytes(b"this is not a protobuf" * 10)
    (folder / "truncated.onnx").write_bytes(model.read_bytes()[:1000])
    bare = onnx.load(str(model))
    del bare.metadata_props[:]
    onnx.save(bare, str(folder / "no_metadata.onnx"))

    def tiny(name: str, shape: list, dtype: int, spec: ModelSpec) -> None:
        x = helper.make_tensor_value_info("x", dtype, shape)
        y = helper.make_tensor_value_info("y", dtype, shape)
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name, [x], [y])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        m.metadata_props.extend(onnx.StringStringEntryProto(key=k, value=v) for k, v in spec.to_props().items())
        onnx.save(m, str(folder / name))

    tiny("wrong_shape.onnx", [None, 32, 32, 3], TensorProto.FLOAT, ModelSpec())
    tiny("wrong_dtype.onnx", [None, 28, 28, 1], TensorProto.FLOAT, ModelSpec(input_dtype="int8", input_scale=0.01))
    return {
        "missing": (folder / "missing.onnx", "no such model file; run `make all`"),
        "garbage": (folder / "garbage.onnx", "not a readable ONNX model"),
        "truncated": (folder / "truncated.onnx", "not a readable ONNX model"),
        "no metadata": (folder / "no_metadata.onnx", "metadata_props lack .*not a model exported by this pipeline"),
        "not a 28x28 image": (folder / "wrong_shape.onnx", r"input .* is not a batch of 28x28 single-channel images"),
        "dtype mismatch": (folder / "wrong_dtype.onnx", "input is tensor.float. but its metadata_props say int8"),
    }


BAD_MODELS = ["missing", "garbage", "truncated", "no metadata", "not a 28x28 image", "dtype mismatch"]


@pytest.mark.parametrize("case", BAD_MODELS)
def test_cli_an_unusable_model_exits_2_saying_which_file_and_what_to_do(tiny_model, drawn, tmp_path, case):
    model, message = _bad_models(tmp_path, tiny_model)[case]
    done = run("--model", str(model), str(drawn))
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"{model}: error: ") and "make all" in done.stderr
    assert re.search(message, done.stderr), done.stderr
    with pytest.raises(ModelError, match=message):
        Classifier(model)


@pytest.mark.parametrize("args", [[], ["--top", "0", "x.png"], ["--nope", "x.png"]], ids=["no image", "top 0", "flag"])
def test_cli_usage_errors_exit_2_in_one_line(args):
    done = run(*args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "error:" in done.stderr


def test_classifying_never_loads_tensorflow_or_the_pipeline(smoke_artifacts, good):
    code = (
        "import sys, runtime.preprocess\n"
        "assert 'onnxruntime' not in sys.modules, 'import runtime.preprocess loaded onnxruntime'\n"
        "from runtime import Classifier\n"
        f"print(Classifier({str(smoke_artifacts / 'model.onnx')!r}).classify({str(good[0])!r}).digit)\n"
        "banned = {'tensorflow', 'keras', 'tf_keras', 'tf2onnx', 'onnx', 'pipeline'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [str(good[1]), "[]"]


def test_runtime_sources_import_only_the_standard_library_numpy_pillow_and_onnxruntime():
    allowed = set(sys.stdlib_module_names) | {"numpy", "PIL", "onnxruntime", "runtime"}
    for source in (ROOT / "runtime").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            assert all(n.split(".")[0] in allowed for n in names), f"{source.name} imports {names}"


@pytest.mark.slow
def test_a_fresh_virtualenv_with_only_the_runtime_extra_classifies(
    smoke_artifacts, good, runtime_only_python, tmp_path
):
    python = runtime_only_python
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "list", "--format=json"], capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert {"onnxruntime", "numpy", "pillow", "mnist-edge"} <= names
    assert not names & {"tensorflow", "tf-keras", "keras", "tf2onnx", "onnx", "tensorflow-model-optimization"}
    command = [str(python), "-m", "runtime.classify", "--model", str(smoke_artifacts / "model.onnx"), str(good[0])]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and f": {good[1]} (" in done.stdout, done.stderr
    check = "from runtime import native; print(native.load().path.parent.name)"  # the installed ink.c, built there
    built = subprocess.run([str(python), "-c", check], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert built.stdout.strip() == "native" and not built.stderr, built.stderr
