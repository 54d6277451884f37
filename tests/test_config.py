import dataclasses
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
