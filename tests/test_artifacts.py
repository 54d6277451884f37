"""The artifact registry is consistent, and every stage it names can build what it declares."""

from __future__ import annotations

import importlib

import pytest

from pipeline import artifacts, config, export

NAMES = [a.name for a in artifacts.ARTIFACTS]


def test_names_are_unique_and_parents_come_first():
    assert len(NAMES) == len(set(NAMES))
    for i, a in enumerate(artifacts.ARTIFACTS):
        assert a.parent is None or a.parent in NAMES[:i], f"{a.name}: parent {a.parent} is not listed before it"


@pytest.mark.parametrize("a", artifacts.ARTIFACTS, ids=NAMES)
def test_each_entry_is_well_formed(a):
    assert a.format in artifacts.FORMATS and a.precision in artifacts.PRECISIONS
    assert a.stage in artifacts.STAGE and a.about
    assert artifacts.lineage(a.name)[-1] == artifacts.BASELINE


@pytest.mark.parametrize("a", artifacts.of_stage("export"), ids=lambda a: a.name)
def test_every_export_has_a_recipe(a):
    assert a.kind in export.RECIPES


def test_every_stage_is_a_module_with_a_main():
    for s in artifacts.STAGES:
        module = importlib.import_module(f"pipeline.{s.name}")
        assert callable(module.main), s.name


def test_stages_read_only_config_sections_that_exist():
    known = set(config.sections(config.Config()))
    for s in artifacts.STAGES:
        assert set(s.reads) <= known, f"{s.name} reads {set(s.reads) - known}"


def test_the_registry_table_lists_every_artifact(capsys):
    artifacts.main()
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)


ENTRY_POINTS = {"artifacts", "config", "sweep", "serve"}  # the registry, the config, `make sweep`, `make serve`


def test_the_top_level_of_pipeline_is_the_stages_and_the_named_entry_points():
    top = {p.stem for p in (config.REPO_ROOT / "pipeline").glob("*.py") if p.stem != "__init__"}
    assert top == {s.name for s in artifacts.STAGES} | ENTRY_POINTS
