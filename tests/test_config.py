import dataclasses
import json
import subprocess
import sys

import pytest

from pipeline import config


def test_profiles_resolve_their_own_artifacts_folder(monkeypatch):
    monkeypatch.delenv("ARTIFACTS", raising=False)
    assert config.load("default").artifacts == config.REPO_ROOT / "artifacts"
    smoke = config.load("smoke")
    assert smoke.artifacts == config.REPO_ROOT / "artifacts" / "smoke"
    assert smoke.train.epochs == 1 and smoke.data.train_limit < 60000


def test_relative_artifacts_are_taken_from_the_repo_root(monkeypatch):
    monkeypatch.setenv("ARTIFACTS", "elsewhere/out")
    assert config.load().artifacts == config.REPO_ROOT / "elsewhere" / "out"


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("train", "epochs", -1, r"train.epochs=-1: must be an integer >= 1"),
        ("qat", "epochs", 0, r"qat.epochs=0"),
        ("prune", "final_sparsity", 1.0, r"prune.final_sparsity=1.0: must be in \[0, 1\)"),
        ("prune", "final_sparsity", -0.1, r"prune.final_sparsity"),
        ("train", "learning_rate", 0.0, r"train.learning_rate"),
        ("data", "train_limit", 100, r"data.train_limit=100"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(section, field, value, message):
    cfg = config.Config()
    with pytest.raises(config.ConfigError, match=message):
        dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{field: value})})


def test_unknown_profile_is_a_clear_error_before_any_work():
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.config"], env={"PROFILE": "huge"}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "PROFILE='huge' is unknown" in done.stderr
    assert "Traceback" not in done.stderr


def test_resolved_config_is_json_serialisable():
    d = config.load("smoke").to_dict()
    assert d["profile"] == "smoke" and d["prune"]["final_sparsity"] == 0.8


@pytest.mark.parametrize(
    ("override", "section", "field", "value"),
    [
        ("prune.final_sparsity=0.9", "prune", "final_sparsity", 0.9),
        ("train.epochs=15", "train", "epochs", 15),
        ("structured.widths=8,8,32,16", "structured", "widths", (8, 8, 32, 16)),
        ("prune.skip_layers=conv1,probabilities", "prune", "skip_layers", ("conv1", "probabilities")),
        ("data.train_limit=none", "data", "train_limit", None),
        ("deploy.max_accuracy_drop=0.25", "deploy", "max_accuracy_drop", 0.25),
    ],
)
def test_overrides_are_parsed_to_the_fields_type(override, section, field, value):
    cfg = config.load("default", overrides=[override])
    assert getattr(getattr(cfg, section), field) == value and cfg.overrides == (override,)


def test_nested_sections_and_the_seed_can_be_overridden():
    cfg = config.load("smoke", overrides=["structured.fine_tune.epochs=3", "seed=7"])
    assert cfg.structured.fine_tune.epochs == 3 and cfg.seed == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("prune.final_sparsty=0.9", r"unknown config key 'prune.final_sparsty'; 'prune' has: final_sparsity, "),
        ("pruning.epochs=2", r"unknown config key 'pruning.epochs'; sections and keys are: seed, data, "),
        ("prune=3", r"config key 'prune' is a section; set one of prune.final_sparsity"),
        ("train.epochs=1.5", r"config train.epochs='1.5': not a valid int"),
        ("structured.widths=1,2", r"must be 4 comma-separated values"),
        ("prune.final_sparsity=1.5", r"prune.final_sparsity=1.5: must be in \[0, 1\)"),
        ("epochs", r"not KEY=VALUE"),
    ],
)
def test_a_bad_override_names_the_key_and_what_is_allowed(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load("default", overrides=[override])


def test_overrides_come_from_set_on_the_command_line_and_in_the_environment():
    env = {"PROFILE": "smoke", "SET": "train.epochs=4 prune.epochs=2"}
    cmd = [sys.executable, "-m", "pipeline.config", "--set", "qat.epochs=3"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    d = json.loads(done.stdout)
    assert (d["train"]["epochs"], d["prune"]["epochs"], d["qat"]["epochs"]) == (4, 2, 3)
    bad = subprocess.run([*cmd[:3], "--set", "qat.epochs=x"], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
