"""The sweep: its grid, its choice on validation, and `make sweep` on the smoke pipeline."""

from __future__ import annotations

import json
import os

import pytest
from conftest import make

from pipeline import config, sweep


def test_the_grid_is_every_width_times_every_sparsity_times_every_k_and_names_parse_back():
    overrides = ["sweep.widths=12-8-32-24,8-8-32-16", "sweep.sparsities=0,0.5", "sweep.clusters=0,16"]
    names = sweep.points(config.load("default", overrides=overrides))
    assert names[:4] == ["w12-8-32-24_s00_k00", "w12-8-32-24_s00_k16", "w12-8-32-24_s50_k00", "w12-8-32-24_s50_k16"]
    assert len(names) == 8
    assert sweep.parse("w12-8-32-24_s50_k16") == ((12, 8, 32, 24), 0.5, 16)
    assert config.SweepConfig.unclustered("w12-8-32-24_s50_k16") == "w12-8-32-24_s50_k00"


def test_a_clustered_point_waits_for_the_model_it_clusters():
    from pipeline.core import deps

    rules = deps.sweep_rules(config.load("smoke", overrides=[]))
    clustered = next(r for r in rules.split("\n\n") if r.startswith("$(A)/sweep/w12-8-32-24_s50_k16.json:"))
    assert "$(A)/sweep/w12-8-32-24_s50_k00.json" in clustered


def test_the_best_point_per_target_is_chosen_on_validation_within_the_bar():
    c = lambda flash, ram: {"library_flash_bytes": flash, "ram_bytes": ram}  # noqa: E731
    found = [
        {"name": "big", "int8_val_accuracy": 0.993, "gzip_bytes": 30_000, "macs": 400_000, "generated_c": c(20e3, 3e3)},
        {
            "name": "small",
            "int8_val_accuracy": 0.992,
            "gzip_bytes": 20_000,
            "macs": 300_000,
            "generated_c": c(9e3, 4e3),
        },
        {"name": "tiny", "int8_val_accuracy": 0.980, "gzip_bytes": 10_000, "macs": 100_000, "generated_c": c(5e3, 1e3)},
    ]  # tiny is 1.3 pp below the baseline on validation
    chosen = sweep.best(found, baseline_val=0.993, max_drop_pp=0.1)
    assert chosen == {
        "within_bar": ["big", "small"],
        "smallest_download": "small",
        "smallest_mcu_flash": "small",
        "smallest_mcu_ram": "big",
        "fewest_macs": "small",
    }


def test_a_point_distils_only_where_that_wins_on_validation():
    assert sweep.alphas(config.load("default", overrides=[])) == (0.0, config.SweepConfig().distill_alpha)
    assert sweep.alphas(config.load("default", overrides=["sweep.distill_alpha=0"])) == (0.0,)
    assert sweep.better({0.0: 0.990, 0.5: 0.992}) == 0.5
    assert sweep.better({0.0: 0.992, 0.5: 0.990}) == 0.0
    assert sweep.better({0.0: 0.991, 0.5: 0.991}) == 0.0  # a tie: without the teacher


def test_a_point_outside_the_grid_is_refused():
    with pytest.raises(Exception, match="not a point of config `sweep`"):
        sweep.run(config.load("smoke", overrides=[]), ["w1-1-1-1_s00_k00"])


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
        if p["generated_c"] is not None:  # with the Cortex-M toolchain (always under CI)
            assert p["generated_c"]["bit_exact"] and p["generated_c"]["library_flash_bytes"] > 0
        elif os.environ.get("CI") == "true":
            pytest.fail(f"{p['name']}: no generated C figures under CI")
    clustered = [p for p in found["points"] if p["clusters"]]
    assert clustered and all(p["generated_c"] is None or p["generated_c"]["palette_layers"] for p in clustered)
    by_name = {p["name"]: p for p in found["points"]}
    for p in found["points"]:
        d = p["distill"]
        if p["clusters"]:  # as the model it clusters was
            assert d["alpha"] == by_name[d["from"]]["distill"]["alpha"]
        else:  # fine-tuned both ways, the better kept
            assert set(d["val_accuracy_by_alpha"]) == {"0", f"{smoke_config.sweep.distill_alpha:g}"}
            assert d["alpha"] == sweep.better({float(a): v for a, v in d["val_accuracy_by_alpha"].items()})
            assert p["val_accuracy"] == d["val_accuracy_by_alpha"][f"{d['alpha']:g}"]
    report = (smoke_artifacts / "report.md").read_text()
    assert "## Sweep: widths x sparsities x clusters" in report and (smoke_artifacts / "report" / "sweep.png").is_file()
