"""Shared fixtures: real MNIST and one smoke run of the whole pipeline per test session.

``SMOKE_ARTIFACTS=dir`` reuses (and brings up to date) a smoke run in ``dir`` instead of
a fresh temporary one, which makes repeated local test runs fast.

The two tiers: a test that uses the smoke pipeline (``smoke_artifacts``) is marked ``slow``
and one that needs MNIST (``mnist``, ``mnist_cache``, which may download it) ``network``,
here, from the fixtures it asks for; ``make test-fast`` runs the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import config, data

REPO = config.REPO_ROOT
TIERS = {"smoke_artifacts": "slow", "smoke_config": "slow", "mnist": "network", "mnist_cache": "network"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for fixture, marker in TIERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def mnist_cache() -> Path:
    """The pipeline's verified MNIST cache, fetched from its real sources if not there yet. A cache already
    there is only verified: the data stage would touch it, and the next `make all` would retrain everything."""
    cfg = config.load("default")
    path = data.cache_path(cfg)
    if path.is_file():
        data.load(path)  # verified again, as every reader does
        return path
    return data.run(cfg)


@pytest.fixture(scope="session")
def mnist(mnist_cache) -> dict[str, np.ndarray]:
    return data.load(mnist_cache)


def make_env(artifacts: Path) -> dict[str, str]:
    """What a user's ``make`` gets: the smoke profile in ``artifacts``, this virtualenv, no SET, and none
    of a parent make's variables (under ``make test`` they name a jobserver the child cannot use)."""
    parent = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in parent}
    return env | {"PROFILE": "smoke", "ARTIFACTS": str(artifacts), "VENV": sys.prefix, "SET": ""}


def make(target: str, artifacts: Path, *flags: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``make`` in the repo for the smoke profile, with this interpreter's virtualenv."""
    env = make_env(artifacts)
    cmd = ["make", "--no-print-directory", f"VENV={sys.prefix}", *flags, target]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"make {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="session")
def runtime_only_python(tmp_path_factory) -> str:
    """The interpreter of a fresh virtualenv holding `pip install '.[runtime]'` of this checkout only."""
    clone = tmp_path_factory.mktemp("clone")  # what a fresh clone holds, without artifacts/ or build leftovers
    for name in ("runtime", "pipeline"):
        shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("__pycache__", "_ink-*", ".ink-*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, clone / name)
    venv = tmp_path_factory.mktemp("runtime-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", ".[runtime]"], check=True, timeout=600, cwd=clone)
    return python


@pytest.fixture(scope="session")
def smoke_artifacts(tmp_path_factory, mnist_cache) -> Path:
    """A folder with every artifact of `make all PROFILE=smoke`, the report included."""
    where = Path(os.environ.get("SMOKE_ARTIFACTS") or tmp_path_factory.mktemp("smoke"))
    (where / "data").mkdir(parents=True, exist_ok=True)
    if not (where / "data" / "mnist.npz").exists():  # a copy: the stage touches it, a link would touch the cache
        shutil.copyfile(mnist_cache, where / "data" / "mnist.npz")  # the data stage's sources are tested on their own
    make("all", where)
    return where


@pytest.fixture(scope="session")
def smoke_config(smoke_artifacts) -> config.Config:
    return config.load("smoke", smoke_artifacts)
