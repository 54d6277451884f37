"""An emulated aarch64 Linux with Python 3.11 and the runtime's libraries, to run the device kit on "ARM".

    python -m pipeline.measure.sysroot [--cache build/arm]   # builds it once, then says how to run its Python
    build/arm/python -m runtime.bench --quick           # in an unpacked device kit: runs under qemu

    from pipeline.measure import sysroot
    command = sysroot.ensure(Path("build/arm"))         # [qemu-aarch64-static, -L, ROOT, ROOT/usr/bin/python3.11]

The recipe: Debian's ``qemu-user-static`` on the host; Debian arm64 ``python3.11`` and ``libstdc++6``
with their dependency closure (as apt resolves it against an empty system), fetched with
``apt-get download`` through a private apt state (its own sources, lists, cache and dpkg status under
the cache folder, ``APT::Architecture=arm64``: nothing arm64 is installed on the host and the host's
apt state is untouched) and unpacked with ``dpkg -x``; aarch64 wheels of onnxruntime, numpy and
Pillow (the versions this interpreter has, so both sides run the same code) and their requirements
via ``pip download --platform manylinux_2_28_aarch64 ...``, unpacked with ``pip install --target``.
qemu 7.2 passes the host's /proc/cpuinfo through, on which onnxruntime's CPU detection crashes; a
Neoverse-N1 one at ``ROOT/proc/cpuinfo`` (``-L`` redirects the open) with ``QEMU_CPU=neoverse-n1``
agrees with the emulated CPU. Each step is stamped when done, so a second run reuses it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

SUITE = "bookworm"  # Debian 12: the suite whose python3.11 is the runtime's interpreter here
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
PACKAGES = ("python3.11", "libstdc++6")  # the interpreter, and the C++ library onnxruntime links
WHEELS = ("onnxruntime", "numpy", "pillow")  # the runtime extra
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
QEMU = "qemu-aarch64-static"
QEMU_CPU = "neoverse-n1"
CPUINFO = "".join(  # what a Neoverse-N1 (e.g. AWS Graviton2) reports, two cores
    f"processor\t: {i}\nBogoMIPS\t: 243.75\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
    for i in range(2)
)


class SysrootError(RuntimeError):
    """A tool is missing or a step failed: one message saying which and what to do."""


def _run(command: list[str], what: str, **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SysrootError(f"{what} failed ({' '.join(command[:3])} ...):\n  " + "\n  ".join(tail))
    return done.stdout


def _say(message: str) -> None:
    print(f"[arm sysroot] {message}", file=sys.stderr, flush=True)


def missing_tools() -> list[str]:
    """What the host lacks, each with how to get it."""
    needs = {QEMU: "apt-get install qemu-user-static", "apt-get": "a Debian or Ubuntu host", "dpkg": "dpkg"}
    found = [f"{tool} ({fix})" for tool, fix in needs.items() if not shutil.which(tool)]
    return found + ([f"{KEYRING} (apt-get install debian-archive-keyring)"] if not Path(KEYRING).is_file() else [])


def _apt(cache: Path) -> list[str]:
    """apt-get options for a private arm64 apt state under ``cache/apt``: the host's is not touched."""
    state = cache / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "parts", "preferences.d"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").touch()  # an empty system: the closure includes everything the packages need
    sources = [f"{MIRROR} {SUITE} main", f"{MIRROR} {SUITE}-updates main", f"{SECURITY} {SUITE}-security main"]
    text = "".join(f"deb [arch=arm64 signed-by={KEYRING}] {s}\n" for s in sources)
    (state / "sources.list").write_text(text)
    settings = {
        "APT::Architecture": "arm64",
        "APT::Architectures": "arm64",
        "Dir::Etc::SourceList": state / "sources.list",
        "Dir::Etc::SourceParts": state / "parts",
        "Dir::Etc::Preferences": state / "preferences",
        "Dir::Etc::PreferencesParts": state / "preferences.d",
        "Dir::State": state,
        "Dir::State::Lists": state / "lists",
        "Dir::State::status": state / "status",
        "Dir::Cache": state / "cache",
        "Debug::NoLocking": "1",  # its own state: no need for (or right to) the host's locks
        "APT::Sandbox::User": "root",  # the downloads land in a root-owned cache folder
    }
    return [x for k, v in settings.items() for x in ("-o", f"{k}={v}")]


def debs(cache: Path, root: Path) -> None:
    """Fetch the packages' closure with apt-get download and unpack it into ``root`` with dpkg -x."""
    stamp = root / ".debs.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("packages") == list(PACKAGES):
        _say(f"reusing the Debian arm64 packages in {root}")
        return
    apt = _apt(cache)
    _say(f"apt-get update (private arm64 state in {cache / 'apt'})")
    _run(["apt-get", *apt, "update"], "apt-get update")
    plan = _run(["apt-get", *apt, "install", "--simulate", "--no-install-recommends", *PACKAGES], "resolving")
    wanted = re.findall(r"^Inst (\S+) \(([^ ]+)", plan, re.MULTILINE)
    if not wanted:
        raise SysrootError(f"apt resolved nothing to fetch for {' '.join(PACKAGES)}")
    folder = cache / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    _say(f"apt-get download: {len(wanted)} packages into {folder}")
    _run(["apt-get", *apt, "download", *(f"{n.split(':')[0]}:arm64={v}" for n, v in wanted)], "apt-get download",
         cwd=folder)  # fmt: skip
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name, version in wanted:
        (deb,) = folder.glob(f"{name.split(':')[0]}_{version.replace(':', '%3a')}_*.deb")
        _run(["dpkg", "-x", str(deb), str(root)], f"unpacking {deb.name}")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(CPUINFO)
    stamp.write_text(json.dumps({"packages": list(PACKAGES), "unpacked": sorted(f"{n}={v}" for n, v in wanted)}))


def requirements() -> list[str]:
    """The runtime extra pinned to this interpreter's versions, else left to pip."""
    found = []
    for name in WHEELS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(name)
    return found


def wheels(cache: Path, root: Path, wanted: list[str]) -> None:
    """aarch64 wheels of ``wanted`` and their requirements, installed into the sysroot's dist-packages."""
    target = root / "usr" / "lib" / "python3" / "dist-packages"
    stamp = target / ".wheels.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        _say(f"reusing the aarch64 wheels of {' '.join(wanted)}")
        return
    folder = cache / "wheels"
    tags = [x for p in PLATFORMS for x in ("--platform", p)]
    tags += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _say(f"pip download (aarch64, CPython 3.11): {' '.join(wanted)}")
    _run([*pip, "download", *tags, "--dest", str(folder), *wanted], "pip download")
    if target.exists():
        shutil.rmtree(target)
    files = [str(p) for p in sorted(folder.glob("*.whl"))]
    _say(f"pip install --target {target}: {len(files)} wheels")
    _run([*pip, "install", *tags, "--no-deps", "--no-index", "--no-compile", "--target", str(target), *files],
         "pip install --target")  # fmt: skip
    stamp.write_text(json.dumps(wanted))


def command(root: Path) -> list[str]:
    """The command that runs the sysroot's Python (set ``env()`` too)."""
    return [QEMU, "-L", str(root), str(root / "usr" / "bin" / "python3.11")]


def env() -> dict[str, str]:
    return os.environ | {"QEMU_CPU": QEMU_CPU, "PYTHONDONTWRITEBYTECODE": "1"}


def ensure(cache: Path, wanted: list[str] | None = None) -> list[str]:
    """Build what is missing under ``cache`` (idempotent), check that it imports, and return ``command``."""
    missing = missing_tools()
    if missing:
        raise SysrootError("missing on this host: " + "; ".join(missing))
    cache, root = cache.resolve(), cache.resolve() / "root"
    wanted = wanted or requirements()
    debs(cache, root)
    wheels(cache, root, wanted)
    probe = "import numpy, onnxruntime, PIL, platform; print(platform.machine(), onnxruntime.__version__)"
    out = _run([*command(root), "-c", probe], "importing onnxruntime under qemu", env=env(), timeout=600)
    _say(f"ready: {out.strip()} ({root})")
    wrapper = cache / "python"  # for people: run the device kit's commands by hand
    wrapper.write_text(f'#!/bin/sh\nQEMU_CPU={QEMU_CPU} exec {" ".join(command(root))} "$@"\n')
    wrapper.chmod(0o755)
    return command(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[2] / "build" / "arm")
    args = parser.parse_args()
    try:
        ensure(args.cache)
    except SysrootError as e:
        sys.exit(f"[arm sysroot] error: {e}")
    print(f"{args.cache / 'python'}  # runs aarch64 Python 3.11 under qemu")


if __name__ == "__main__":
    main()
