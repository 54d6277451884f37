"""The device kit: what it takes to measure the candidate models on another machine, in one tarball.

    python -m pipeline.device_kit            # writes artifacts/device-kit.tar.gz

``device-kit/`` holds ``runtime/`` (the package's modules, ``native/ink.c``, ``bench_schema.json`` and
``preprocess.json``, nothing else: no library built here, which the device builds for itself),
``models/`` (every ONNX artifact of ``benchmark.json``, and ``model.onnx``), ``images/`` (500 MNIST
test digits as ``LABEL_INDEX.png``, 50 per class, picked by a fixed seed) and a ``README.md`` with
the commands to run on the device (``runtime.bench``) and what to send back. Two builds from the
same artifacts are byte-identical: members sorted, fixed times, owners and modes, gzip without a
time stamp or file name.
"""

from __future__ import annotations

import gzip
import io
import logging
import tarfile
import time
from pathlib import Path

import numpy as np

import runtime
from pipeline import config, data
from pipeline.core import stage
from pipeline.formats import onnx_io
from runtime import native

log = logging.getLogger("pipeline.device_kit")

KIT = "device-kit.tar.gz"
TOP = "device-kit"  # the folder the tarball unpacks into
PER_CLASS = 50  # test images per digit: 500 in all, enough to see a device disagree on a few
SEED = 20240901  # picks the images; fixed so that every kit holds the same ones
MTIME = 946684800  # 2000-01-01 UTC, on every member: a fixed time makes the tarball reproducible
RUNTIME = Path(runtime.__file__).parent
README = """\
# mnist-edge device kit

Measures the pipeline's candidate ONNX models on this device with the runtime alone
(onnxruntime, numpy and Pillow; no TensorFlow): batch-1 latency with the runtime's session
options and with onnxruntime's defaults, throughput, and accuracy on {images} labelled MNIST
test digits through the runtime's own preprocessing. Needs Python 3.10 or newer and pip
(on Debian, Ubuntu or Raspberry Pi OS: `sudo apt install python3-venv` first).

Run in this folder (Linux or macOS; on Windows, `.venv\\Scripts\\activate`):

```sh
python3 -m venv .venv && . .venv/bin/activate
pip install onnxruntime numpy pillow
python -m runtime.bench --name DEVICE
```

The first run builds the runtime's image analysis (`runtime/native/ink.c`) with the device's C
compiler, in about a second (`sudo apt install gcc` if there is none). Without one, it says so and
preprocesses in numpy, up to 4x slower; the models' figures are the same either way.

Use a short name for the device instead of `DEVICE` (e.g. `pi5`, `pixel8-termux`). It takes
about a minute; `--quick` checks that everything works in a few seconds. Leave the device
otherwise idle while it runs.

**Send back `DEVICE.json`.** It holds the name you gave, the CPU's model and ISA flags, the OS,
the Python and library versions and, per model, the latency, throughput, accuracy and peak
memory; no paths, user names or host name (unless you leave out `--name`). The build machine
merges it with `make report DEVICES="DEVICE.json ..."`.

To classify your own images: `python -m runtime.classify --model models/model.onnx PHOTO.png`.

Models ({count}): {models}; `model.onnx` is the deployed one{deployed}.
"""


def candidates(artifacts: Path) -> list[Path]:
    """Every ONNX artifact the benchmark measured, and the deployed ``model.onnx``."""
    return onnx_io.onnx_files(artifacts)


def pick(labels: np.ndarray, per_class: int = PER_CLASS, seed: int = SEED) -> np.ndarray:
    """Indices of ``per_class`` images of each class, chosen at random with ``seed``, in index order."""
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == c][:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def members(artifacts: Path, mnist: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The kit's files: path inside ``TOP`` -> contents."""
    sources = [*RUNTIME.glob("*.py"), *RUNTIME.glob("native/*.py"), native.SOURCE]
    files = {f"runtime/{p.relative_to(RUNTIME).as_posix()}": p.read_bytes() for p in sorted(sources)}
    for name in ("bench_schema.json", "preprocess.json"):
        files[f"runtime/{name}"] = (RUNTIME / name).read_bytes()
    models = candidates(artifacts)
    files |= {f"models/{p.name}": p.read_bytes() for p in models}
    x, y = mnist["x_test"], mnist["y_test"]
    chosen = pick(y)
    files |= {f"images/{int(y[i])}_{i:05d}.png": png(x[i]) for i in chosen}
    others = [p.name for p in models if p.name != "model.onnx"]
    names = ", ".join(f"`{n}`" for n in others)
    same = [n for n in others if files[f"models/{n}"] == files["models/model.onnx"]]
    deployed = f", the same file as `{same[0]}`" if same else ""
    readme = README.format(images=len(chosen), count=len(models), models=names, deployed=deployed)
    files["README.md"] = readme.encode()
    return files


def tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` under ``TOP/``, the same bytes for the same files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({str(Path(TOP, name).parent) for name in files} | {TOP})
        for name, content in [(f, None) for f in folders] + [(f"{TOP}/{n}", files[n]) for n in sorted(files)]:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def build(artifacts: Path, out: Path, mnist_path: Path) -> Path:
    """Write the kit for the models in ``artifacts`` to ``out``, atomically."""
    files = members(artifacts, data.load(mnist_path))
    stage.write_bytes(out, tarball(files))
    models = sum(n.startswith("models/") for n in files)
    images = sum(n.startswith("images/") for n in files)
    log.info("wrote %s: %d models, %d images, %.1f MB", out, models, images, out.stat().st_size / 1e6)
    return out


def run(cfg: config.Config) -> Path:
    started = time.time()
    out = build(cfg.artifacts, cfg.artifacts / KIT, data.cache_path(cfg))
    stage.record(cfg, "device_kit", [out], candidates(cfg.artifacts), started)
    return out


def main() -> None:
    stage.main("device_kit", run)


if __name__ == "__main__":
    main()
