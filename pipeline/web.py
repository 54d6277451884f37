"""The browser target: the draw-a-digit page and every ONNX model, as a static site -> ``web/``.

    python -m pipeline.web      # then `make serve`, or copy <artifacts>/web/ to any static host

Writes ``<artifacts>/web/``: the page (``web/`` of this repository: index.html, its CSS and
JavaScript, and ``runtime/preprocess.json``, the preprocessing's constants it shares with the
runtime), ``ink.wasm`` (the runtime's image analysis, ``runtime/native/ink.c``, built for
WebAssembly with clang and wasi-libc: the page runs the C the runtime runs), the deployed
``model.onnx``, every ONNX artifact of ``benchmark.json`` (the page loads one with
``?model=NAME.onnx``), and the two files of onnxruntime-web's wasm backend (the
ES module with its glue code bundled in, and the SIMD wasm binary; not the WebGPU, WebGL or JSEP
builds) from the pinned npm install in ``web/node_modules`` (``npm ci --prefix web`` runs first
if it is missing or another version). Files that compress well get a ``.gz`` copy beside them,
which ``pipeline.serve`` sends to browsers that accept gzip.

The site is built in a temporary folder and renamed into place, so an interrupted run leaves the
old site or the new one. Without npm, or without a clang that builds for wasm32-wasi, the stage
prints one line saying what to install and exits 0: the rest of the pipeline does not need the
browser target.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import config as config_mod
from pipeline.core import stage
from pipeline.formats import onnx_io

log = logging.getLogger("pipeline.web")

SOURCES = config_mod.REPO_ROOT / "web"  # the page's sources and its package.json / package-lock.json
CONSTANTS = config_mod.REPO_ROOT / "runtime" / "preprocess.json"  # the preprocessing's constants, read by both
PAGE_SUFFIXES = (".html", ".css", ".js")  # what of SOURCES the site serves
PACKAGE = "onnxruntime-web"
# What the wasm backend loads: ort.wasm.bundle.min.mjs bundles the emscripten glue
# (ort-wasm-simd-threaded.mjs) and fetches the wasm binary beside itself.
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
DEPLOYED = onnx_io.DEPLOYED
GZIP_MIN_BYTES = 1024  # smaller files are not worth a second request path
GZIP_MAX_RATIO = 0.9  # keep a .gz copy only if it saves at least a tenth
SKIPPED = (
    "[web] skipped: the browser target needs npm to install onnxruntime-web (apt-get install npm), then run `make web`"
)
INK_C = config_mod.REPO_ROOT / "runtime" / "native" / "ink.c"  # the runtime's image analysis
# runtime.native.CFLAGS, which tests/test_web.py holds these to. Not imported: every stage that imports this module
# (the parity stage's wasm tier does) would then rerun when ink.c changes.
CFLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-funroll-loops", "-fno-math-errno")
WASM = "ink.wasm"  # INK_C for the page (web/ink.js loads it)
WASM_CC = "WASM_CC"  # environment: the clang command that builds it (default: clang)
WASM_FLAGS = ("--target=wasm32-wasi", *CFLAGS, "-nostartfiles", "-Wl,--no-entry", "-Wl,--strip-all")
WASM_EXPORTS = ("ink_configure", "ink_find", "ink_centre", "ink_names", "ink_constants", "malloc", "free")
WASM_PACKAGES = "clang lld wasi-libc libclang-rt-14-dev-wasm32"  # Debian 12's
WASM_SKIPPED = (
    "[web] skipped: the page's image analysis is runtime/native/ink.c built for WebAssembly, which needs clang with"
    f" wasm-ld and wasi-libc (apt-get install {WASM_PACKAGES}, or set {WASM_CC}), then run `make web`"
)
PROBE = "#include <math.h>\n#include <stdlib.h>\ndouble probe(double x) { return sin(x) + (malloc(8) != 0); }\n"


def pinned_version(sources: Path = SOURCES) -> str:
    """The onnxruntime-web version web/package.json pins."""
    return json.loads((sources / "package.json").read_text())["dependencies"][PACKAGE]


def installed_version(sources: Path = SOURCES) -> str | None:
    manifest = sources / "node_modules" / PACKAGE / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def ensure_runtime(sources: Path = SOURCES) -> Path | None:
    """onnxruntime-web's dist folder at the pinned version (``npm ci`` if needed); None if npm is missing."""
    want = pinned_version(sources)
    if installed_version(sources) != want:
        npm = shutil.which("npm")
        if npm is None:
            return None
        log.info("installing %s %s with npm ci", PACKAGE, want)
        done = subprocess.run(
            [npm, "ci", "--prefix", str(sources), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or installed_version(sources) != want:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise stage.PipelineError(f"npm ci --prefix {sources} failed: {tail[0]}")
    dist = sources / "node_modules" / PACKAGE / "dist"
    missing = [f for f in RUNTIME_FILES if not (dist / f).is_file()]
    if missing:
        raise stage.PipelineError(f"{PACKAGE} {want} lacks {', '.join(missing)}: its layout changed, see RUNTIME_FILES")
    return dist


def wasm_compiler() -> list[str] | None:
    """The clang command that builds ``ink.wasm`` (``$WASM_CC``, else clang), if it can here: a C file that needs
    libm and malloc builds and links for wasm32-wasi. None if not, so that the stage can say what to install."""
    command = shlex.split(os.environ.get(WASM_CC, "").strip() or "clang")
    if shutil.which(command[0]) is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "probe.c").write_text(PROBE)
        args = [*command, *WASM_FLAGS, "-Wl,--export=probe", "probe.c", "-o", "probe.wasm", "-lm"]
        done = subprocess.run(args, cwd=tmp, capture_output=True, check=False)
    return command if done.returncode == 0 else None


def build_wasm(out: Path, command: list[str]) -> Path:
    """``runtime/native/ink.c`` built for WebAssembly into ``out``: no imports, WASM_EXPORTS exported."""
    exports = [f"-Wl,--export={name}" for name in WASM_EXPORTS]
    args = [*command, *WASM_FLAGS, *exports, str(INK_C), "-o", str(out), "-lm"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:] or ["no output"]
        raise stage.PipelineError(f"building {WASM} from {INK_C.name} failed: " + " / ".join(tail))
    return out


def models(cfg: config_mod.Config) -> list[Path]:
    """model.onnx and every ONNX artifact benchmark.json lists, each checked to exist."""
    return onnx_io.onnx_files(cfg.artifacts)


def page_files(sources: Path = SOURCES) -> list[Path]:
    """The page's files: web/'s HTML, CSS and JavaScript, and the runtime's preprocess.json beside them."""
    files = sorted(p for p in sources.iterdir() if p.is_file() and p.suffix in PAGE_SUFFIXES)
    if not any(p.name == "index.html" for p in files):
        raise stage.PipelineError(f"{sources} has no index.html")
    return [*files, CONSTANTS]


def build(site: Path, files: list[Path]) -> list[dict]:
    """Copy ``files`` into ``site`` with a .gz copy of those that compress well: one row per file."""
    rows = []
    for source in files:
        data = source.read_bytes()
        (site / source.name).write_bytes(data)
        row = {"file": source.name, "bytes": len(data), "gzip_bytes": None}
        if len(data) >= GZIP_MIN_BYTES:
            packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same input, the same bytes
            if len(packed) <= GZIP_MAX_RATIO * len(data):
                (site / f"{source.name}.gz").write_bytes(packed)
                row["gzip_bytes"] = len(packed)
        rows.append(row)
    return rows


def replace_dir(new: Path, final: Path) -> None:
    """Move the finished folder ``new`` to ``final``, the old one out of the way first."""
    old = final.with_name(f".{final.name}.old.{os.getpid()}")
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def run(cfg: config_mod.Config) -> Path | None:
    """Build ``<artifacts>/web``; None (and one line on stdout) if npm is needed and missing."""
    started = time.time()
    paths = models(cfg)
    dist = ensure_runtime()
    if dist is None:
        print(SKIPPED)
        return None
    clang = wasm_compiler()
    if clang is None:
        print(WASM_SKIPPED)
        return None
    final = cfg.artifacts / "web"
    scratch = Path(tempfile.mkdtemp(prefix=".web.", dir=cfg.artifacts))
    try:
        scratch.chmod(0o755)  # mkdtemp makes it private; the site is ordinary files
        with tempfile.TemporaryDirectory() as tmp:
            wasm = build_wasm(Path(tmp) / WASM, clang)
            rows = build(scratch, page_files() + [wasm] + [dist / f for f in RUNTIME_FILES] + paths)
        replace_dir(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raw = sum(r["bytes"] for r in rows)
    sent = sum(r["gzip_bytes"] or r["bytes"] for r in rows)
    stage.record(
        cfg,
        "web",
        [final / "index.html", final],  # the page is Make's target, as for every stage its primary output
        [*paths, cfg.artifacts / "benchmark.json"],
        started,
        onnxruntime_web=pinned_version(),
        files=rows,
        bytes=raw,
        gzip_bytes=sent,
    )
    log.info("wrote %s: %d files, %.1f MB (%.1f MB sent with gzip)", final, len(rows), raw / 1e6, sent / 1e6)
    return final


def main() -> None:
    if installed_version() != pinned_version() and shutil.which("npm") is None:
        print(SKIPPED)  # one line, exit 0: `make all` goes on without the browser target
        sys.exit(0)
    stage.main("web", run)


if __name__ == "__main__":
    main()
