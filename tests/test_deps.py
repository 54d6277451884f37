"""Make's dependency graph, derived from the registry: what `make all` would rerun after each change.

Fast: the artifacts folder is made of empty files, every one up to date, and `make --dry-run` says
what it would run; no stage runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_env

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline.core import deps

REPO = config_mod.REPO_ROOT


def make(folder: Path, *args: str, repo: Path = REPO) -> subprocess.CompletedProcess:
    cmd = ["make", "--no-print-directory", f"VENV={sys.prefix}", *args]
    return subprocess.run(cmd, cwd=repo, env=make_env(folder), capture_output=True, text=True, check=False)


def plan(folder: Path, *args: str, repo: Path = REPO) -> list[str]:
    """The stage commands `make --dry-run all` would run, as "stage [NAME]"."""
    done = make(folder, "--dry-run", "all", *args, repo=repo)
    assert done.returncode == 0, done.stderr
    found = [m.group(1).strip() for m in re.finditer(r"-m pipeline\.([\w. ]+)$", done.stdout, re.M)]
    return [p for p in found if p != "report --summary"]


def build(folder: Path, repo: Path = REPO) -> Path:
    """``folder`` as an artifacts folder in which every stage's output exists and is newer than all it depends on."""
    outputs = [a.name for a in artifacts.ARTIFACTS] + [artifacts.primary(s) for s in artifacts.STAGES if s.outputs]
    for name in outputs:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    done = make(folder, "--touch", "all", repo=repo)  # Make itself touches each after what it is made from
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def built(tmp_path) -> Path:
    return build(tmp_path / "artifacts")


def descendants(name: str) -> set[str]:
    found = {name}
    for a in artifacts.ARTIFACTS:  # the registry lists parents before children
        if a.parent in found:
            found.add(a.name)
    return found


def after(changed: set[str]) -> set[str]:
    """The stages without registry artifacts of their own (benchmark, mcu, deploy, report) that rerun
    when the artifacts ``changed`` change, through their declared inputs, as `make all` runs them."""
    changed, reran = set(changed), set()
    for s in artifacts.STAGES:  # in pipeline order
        if artifacts.of_stage(s.name) or s.name == "device_kit":  # the kit is not part of `make all`
            continue
        inputs = set().union(
            *({a.name for a in artifacts.select(i)} if i in artifacts.SELECTORS else {i} for i in s.inputs)
        )
        if inputs & changed:
            reran.add(s.name)
            changed.add(artifacts.primary(s))
    return reran


def commands_for(names: set[str]) -> set[str]:
    """The stage command that builds each artifact in ``names``."""
    return {f"{a.stage} {a.name}" for a in artifacts.ARTIFACTS if a.name in names}


def test_a_built_folder_has_nothing_to_do(built):
    assert plan(built) == []


def test_touching_the_photo_cleaning_code_reruns_only_its_measurement_and_the_report(built):
    assert plan(built, "--what-if=runtime/ink.py") == ["images", "report"]
    assert plan(built, "--what-if=runtime/preprocess.json") == ["images", "report", "web"]  # read; the site holds it
    assert plan(built, "--what-if=runtime/native/ink.c") == ["images", "report", "web"]  # the page's ink.wasm


def test_changing_the_accuracy_bar_reruns_deploy_and_what_renders_its_decision_only(built):
    # and what is made from the deployed model and the decision: the report, the web site that serves model.onnx
    # and the image path's measurement on it
    assert (
        set(plan(built, "SET=deploy.max_accuracy_drop=0.2"))
        == {"deploy", "images", "report", "web"}
        == {"deploy"} | after({"deploy.json"})
    )


def test_changing_prune_epochs_reruns_prune_and_its_descendants_only(built):
    expected = commands_for(descendants("pruned.keras")) | after(descendants("pruned.keras"))
    assert set(plan(built, "SET=prune.epochs=2")) == expected
    assert "train" not in expected and "structured" not in expected and "mcu" in expected


def test_editing_the_qat_stage_reruns_qat_models_and_what_is_made_from_them(built):
    qat = set().union(*(descendants(a.name) for a in artifacts.of_stage("qat")))
    assert set(plan(built, "--what-if=pipeline/qat.py")) == commands_for(qat) | after(qat)


def test_editing_the_report_text_rerenders_only(built):
    assert plan(built, "--what-if=pipeline/reporting/text.py") == ["report"]


def test_a_dry_run_with_an_override_leaves_the_real_stamps_alone(built):
    assert plan(built, "SET=train.epochs=3")[0] == "train baseline.keras"
    assert plan(built) == []


def test_a_bad_override_stops_make_in_one_line_before_any_stage(built):
    done = make(built, "all", "SET=prune.epochs=x")
    assert done.returncode != 0 and "-m pipeline" not in done.stdout
    assert done.stderr.count("\n") == 1 and "prune.epochs='x': not a valid int" in done.stderr


def test_stage_modules_depend_on_what_they_import_and_nothing_else():
    assert "runtime/ink.py" not in deps.modules("benchmark")
    assert {"runtime/native/ink.c", "runtime/preprocess.json"} <= set(deps.modules("images"))
    assert all((deps.ROOT / f).is_file() for files in deps.READS.values() for f in files)
    graph = "pipeline/formats/graph.py"
    assert graph in deps.modules("export") and graph not in deps.modules("train")
    assert not any(m in deps.STAMPED for s in artifacts.STAGES for m in deps.modules(s.name))


SECOND_PRUNED = """
ARTIFACTS += (
    Artifact("pruned90.keras", "baseline.keras", "fp32", MagnitudePrune(final_sparsity=0.9), "90 % zeros"),
    Artifact("pruned90_fp32.tflite", "pruned90.keras", "fp32", TFLite(), "the 90 % model in TFLite"),
)
BY_NAME = {a.name: a for a in ARTIFACTS}
"""


def test_a_second_pruned_model_is_one_registry_entry_and_plans_only_its_own_work(tmp_path):
    """A copy of the repository (its files' times kept) whose registry gains a 90 % sparse model and its
    TFLite export: on a built folder, make plans exactly their prune and export, then what measures them."""
    repo = tmp_path / "repo"
    for name in ("pipeline", "runtime", "web"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, repo / name)
    folder = build(tmp_path / "artifacts", repo)
    registry = repo / "pipeline" / "artifacts.py"
    registry.write_text(registry.read_text() + SECOND_PRUNED)
    planned = plan(folder, repo=repo)
    made = [p for p in planned if p.split()[0] in {a.stage for a in artifacts.ARTIFACTS}]
    assert made == ["prune pruned90.keras", "export pruned90_fp32.tflite"]
    assert {"benchmark", "parity"} <= set(planned) and "train baseline.keras" not in planned


def test_a_recipe_parameter_that_does_not_exist_fails_before_make_runs(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    registry = repo / "pipeline" / "artifacts.py"
    typo = 'ARTIFACTS += (Artifact("p.keras", "baseline.keras", "fp32", MagnitudePrune(final_sparsty=0.9), "x"),)\n'
    registry.write_text(registry.read_text() + typo)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.core.deps", str(tmp_path / "deps.mk")],
        cwd=repo, env=make_env(tmp_path / "a"), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "final_sparsty" in done.stderr


def test_a_config_key_a_recipe_names_must_exist():
    bad = artifacts.Artifact(
        "x.keras", "baseline.keras", "fp32", artifacts.QAT(epochs=artifacts.FromConfig("qat.epoch")), ""
    )
    with pytest.raises(ValueError, match=r"qat\.epoch"):
        bad.recipe.resolved(config_mod.Config())


def test_set_reaches_every_recipe_that_names_the_key():
    cfg = config_mod.load("default", overrides=["qat.epochs=3", "qat.structured_epochs=4"])
    epochs = {a.name: a.recipe.resolved(cfg).epochs for a in artifacts.of_stage("qat")}
    assert epochs == {
        "qat.keras": 3,
        "pruned_qat.keras": 3,
        "structured_qat.keras": 4,
        "structured_cqat.keras": 4,
        "pruned_pcqat.keras": 3,
    }
