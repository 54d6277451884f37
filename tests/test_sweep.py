"""The sweep: its grid, its choice on validation, and `make sweep` on the smoke pipeline."""

from __future__ import annotations

import json

import pytest
from conftest import make

from pipeline import config, sweep


def test_the_grid_is_every_width_times_every_sparsity_and_names_parse_back():
    cfg = config.load("default", overrides=["sweep.widths=12-8-32-24,8-8-32-16", "sweep.sparsities=0,0.5"])
    names = sweep.points(cfg)
    assert names == ["w12-8-32-24_s00", "w12-8-32-24_s50", "w8-8-32-16_s00", "w8-8-32-16_s50"]
    assert sweep.parse("w12-8-32-24_s50") == ((12, 8, 32, 24), 0.5)


def test_the_best_points_are_chosen_on_validation_within_the_bar():
    found = [
        {"name": "big", "int8_val_accuracy": 0.993, "flash_bytes": 30_000, "macs": 400_000},
        {"name": "small", "int8_val_accuracy": 0.992, "flash_bytes": 20_000, "macs": 300_000},
        {"name": "tiny", "int8_val_accuracy": 0.980, "flash_bytes": 10_000, "macs": 100_000},  # 1.3 pp below
    ]
    chosen = sweep.best(found, baseline_val=0.993, max_drop_pp=0.1)
    assert chosen == {"smallest_flash": "small", "fewest_macs": "small", "within_bar": ["big", "small"]}


def test_a_point_outside_the_grid_is_refused():
    with pytest.raises(Exception, match="not a point of config `sweep`"):
        sweep.run(config.load("smoke", overrides=[]), ["w1-1-1-1_s00"])


@pytest.mark.slow
def test_make_sweep_measures_every_point_and_the_report_shows_them(smoke_artifacts, smoke_config):
    make("sweep", smoke_artifacts)
    found = json.loads((smoke_artifacts / "sweep.json").read_text())
    assert [p["name"] for p in found["points"]] == sweep.points(smoke_config)
    for p in found["points"]:
        assert (
            p["int8_accuracy"] > 0.6
            and p["flash_bytes"] == (smoke_artifacts / "sweep" / f"{p['name']}_int8.tflite").stat().st_size
        )
    report = (smoke_artifacts / "report.md").read_text()
    assert "## Sweep: widths x sparsities" in report and (smoke_artifacts / "report" / "sweep.png").is_file()
