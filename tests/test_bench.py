"""``runtime.bench`` (on-device figures), ``pipeline.measure.devices`` (merging them) and the device kit.

The fast tests run the bench on tiny models built here; the slow ones build the kit from the
smoke pipeline and run it as a device would: in fresh virtualenvs with nothing but the runtime.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest
from PIL import Image

from pipeline import device_kit
from pipeline.core import stage
from pipeline.measure import devices
from runtime import Classifier, bench
from tests import tiny_onnx

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = jsonschema.Draft202012Validator(devices.schema())


@pytest.fixture
def kit_like(tmp_path) -> Path:
    """A folder laid out like the device kit: two tiny models and a dozen labelled images."""
    (tmp_path / "models").mkdir()
    (tmp_path / "images").mkdir()
    for seed in (0, 1):
        onnx.save(tiny_onnx.classifier(seed), tmp_path / "models" / f"tiny{seed}.onnx")
    rng = np.random.default_rng(0)
    for i in range(12):
        ink = np.zeros((28, 28), np.uint8)
        y, x = rng.integers(4, 12, 2)
        ink[y : y + 12, x : x + rng.integers(3, 12)] = 255
        Image.fromarray(ink).save(tmp_path / "images" / f"{i % 10}_{i:05d}.png")
    (tmp_path / "images" / "notes.png").write_bytes(b"not labelled: skipped")
    return tmp_path


def _bench(folder: Path, *args: str) -> tuple[int, dict | None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        status = bench.main(["--quick", "--runs", "20", "--name", "tiny box", *args])
    out = folder / "tiny-box.json"
    return status, (json.loads(out.read_text()) if status == 0 else None)


def test_bench_writes_a_json_that_validates_against_its_schema(kit_like):
    status, result = _bench(kit_like)
    assert status == 0
    VALIDATOR.validate(result)
    assert [m["name"] for m in result["models"]] == ["tiny0.onnx", "tiny1.onnx"]
    assert result["images"]["images"] == 12 and result["machine"]["name"] == "tiny box"
    for m in result["models"]:
        assert set(m["latency_us"]) == {"runtime", "ort_defaults"}
        assert m["latency_us"]["runtime"]["runs"] == 20


def test_bench_accuracy_is_what_classify_many_gives(kit_like):
    _, result = _bench(kit_like, "--predictions")
    files = sorted((kit_like / "images").glob("*_*.png"))
    assert result["images"]["files"] == [p.name for p in files]
    for m in result["models"]:
        digits = [p.digit for p in Classifier(kit_like / "models" / m["name"]).classify_many(files)]
        assert m["predictions"] == digits
        assert m["errors"] == sum(d != int(p.name.split("_")[0]) for d, p in zip(digits, files, strict=True))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "nowhere"], "nowhere: no such file or folder"),
        (["--models", "images"], "no ONNX models in images"),
        (["--images", "models"], "models: no labelled images"),
        (["--models", "images/0_00000.png"], "images/0_00000.png: not a readable ONNX model"),
    ],
)
def test_bench_errors_are_one_line(kit_like, capsys, args, message):
    status, _ = _bench(kit_like, *args)
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and message in err, err


def _device(result: dict, name: str, speeds: dict[str, float]) -> dict:
    """``result`` as if measured on device ``name``, with these p50s under ORT defaults."""
    device = copy.deepcopy(result)
    device["machine"]["name"] = name
    for m in device["models"]:
        m["latency_us"]["ort_defaults"]["p50"] = speeds[m["name"]]
    return device


def test_devices_merge_and_pick_the_fastest_qualified_model_per_device(kit_like, tmp_path):
    _, result = _bench(kit_like)
    paths = []
    for name, speeds in {
        "pi": {"tiny0.onnx": 90.0, "tiny1.onnx": 40.0},
        "pc": {"tiny0.onnx": 9.0, "tiny1.onnx": 30.0},
    }.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_device(result, name, speeds)))
    found = devices.load(paths)
    assert [devices.pick(d, ["tiny0.onnx", "tiny1.onnx"]) for d in found] == ["tiny1.onnx", "tiny0.onnx"]
    assert [devices.pick(d, ["tiny0.onnx"]) for d in found] == ["tiny0.onnx", "tiny0.onnx"]
    assert devices.pick(found[0], []) is None
    rows = devices.table(found, ["tiny0.onnx", "tiny1.onnx"]).splitlines()[2:]
    assert len(rows) == 4 and sum(devices.PICKED in r for r in rows) == 2
    assert re.search(r"tiny1\.onnx .*\*\*pick\*\*", rows[0]) and rows[0].startswith("| pi")


def test_devices_load_names_a_bad_file(kit_like, tmp_path):
    _, result = _bench(kit_like)
    del result["models"][0]["latency_us"]["ort_defaults"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(result))
    with pytest.raises(stage.PipelineError, match=r"bad\.json: .* at models/0/latency_us: 'ort_defaults'"):
        devices.load([bad])
    (tmp_path / "twice.json").write_text((kit_like / "tiny-box.json").read_text())
    with pytest.raises(stage.PipelineError, match="both name their device 'tiny box'"):
        devices.load([kit_like / "tiny-box.json", tmp_path / "twice.json"])


@pytest.fixture(scope="module")
def kit(smoke_artifacts, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / device_kit.KIT
    return device_kit.build(smoke_artifacts, out, smoke_artifacts / "data" / "mnist.npz")


def test_the_device_kit_is_reproducible_and_holds_what_its_readme_says(kit, smoke_artifacts, tmp_path):
    again = device_kit.build(smoke_artifacts, tmp_path / "again.tar.gz", smoke_artifacts / "data" / "mnist.npz")
    assert again.read_bytes() == kit.read_bytes()
    with tarfile.open(kit) as tar:
        names = tar.getnames()
        readme = tar.extractfile(f"{device_kit.TOP}/README.md").read().decode()
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in tar.getmembers()} == {(device_kit.MTIME, 0, 0, "")}
    files = [n.removeprefix(f"{device_kit.TOP}/") for n in names if "." in Path(n).name]
    runtime_files = [*(p.name for p in (ROOT / "runtime").glob("*.py")), "bench_schema.json", "preprocess.json"]
    runtime_files += ["native/__init__.py", "native/ink.c"]  # the source the device builds, no library built here
    assert sorted(f.removeprefix("runtime/") for f in files if f.startswith("runtime/")) == sorted(runtime_files)
    models = [f.removeprefix("models/") for f in files if f.startswith("models/")]
    onnx_artifacts = [a["name"] for a in json.loads((smoke_artifacts / "benchmark.json").read_text())["artifacts"]
                      if a["format"] == "onnx"]  # fmt: skip
    assert sorted(models) == sorted({*onnx_artifacts, "model.onnx"})
    images = [f.removeprefix("images/") for f in files if f.startswith("images/")]
    assert len(images) == 500 and all(re.fullmatch(r"\d_\d{5}\.png", i) for i in images)
    assert np.bincount([int(i[0]) for i in images]).tolist() == [50] * 10
    assert "pip install onnxruntime numpy pillow" in readme and "python -m runtime.bench" in readme
    assert all(f"`{m}`" in readme for m in models)


def readme_commands(kit_dir: Path) -> list[str]:
    """The commands of the kit README's ``sh`` block."""
    (block,) = re.findall(r"```sh\n(.*?)```", (kit_dir / "README.md").read_text(), re.DOTALL)
    return block.strip().splitlines()


def _unpack(kit: Path, where: Path) -> Path:
    with tarfile.open(kit) as tar:
        tar.extractall(where, filter="data")
    return where / device_kit.TOP


def test_the_kit_readme_commands_in_a_fresh_runtime_only_virtualenv_give_a_json_devices_accepts(kit, tmp_path):
    folder = _unpack(kit, tmp_path)
    commands = readme_commands(folder)
    assert len(commands) == 3
    script = " && ".join(c.replace("DEVICE", "test-device") for c in commands)
    script = script.replace("pip install", "pip install --quiet --disable-pip-version-check")
    done = subprocess.run(["bash", "-ec", script], cwd=folder, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run([str(folder / ".venv/bin/python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert not {p["name"].lower() for p in json.loads(listed)} & {"tensorflow", "onnx", "mnist-edge", "jsonschema"}
    (device,) = devices.load([folder / "test-device.json"])
    assert device["images"]["images"] == 500 and len(device["models"]) >= 2
    assert all(m["accuracy"] > 0.8 for m in device["models"])  # the smoke models, through the preprocessing


def test_bench_in_a_fresh_virtualenv_with_only_the_runtime_extra_writes_a_valid_json(
    kit, smoke_artifacts, runtime_only_python, tmp_path
):
    python = runtime_only_python
    images = _unpack(kit, tmp_path / "unpacked") / "images"
    where = tmp_path / "elsewhere"  # not the clone: the installed package runs, and finds its schema
    where.mkdir()
    command = [python, "-m", "runtime.bench", "--quick", "--models", str(smoke_artifacts / "model.onnx"),
               "--images", str(images), "--out", "x.json"]  # fmt: skip
    done = subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    VALIDATOR.validate(json.loads((where / "x.json").read_text()))
    probe = "import importlib.resources as r; print(r.files('runtime').joinpath('bench_schema.json').is_file())"
    shipped = subprocess.run([python, "-c", probe], cwd=where, capture_output=True, text=True, check=True).stdout
    assert shipped.strip() == "True", "bench_schema.json is not in the package: pyproject's package-data"
