"""The report's clustering and distillation sections, from hand-made benchmark rows."""

from pipeline import config
from pipeline.reporting import clustering


def row(name: str, precision: str, gzip_bytes: int, val: float, bits: float | None = None) -> dict:
    palette = {
        "bits_per_weight": bits,
        "max_distinct_per_channel": 16,
        "layers": {"dense1": {"distinct_per_channel": 16}},
    }
    return {
        "name": name,
        "format": name.rsplit(".", 1)[1],
        "precision": precision,
        "gzip_bytes": gzip_bytes,
        "val_accuracy": val,
        "accuracy": val,
        "sparsity": 0.0,
        "palette": palette if bits else None,
    }


ROWS = [
    row("baseline_fp32.tflite", "fp32", 200_000, 0.993),
    row("structured_qat_int8.tflite", "int8", 18_000, 0.993, 7.0),
    row("structured_clustered.keras", "fp32", 100_000, 0.9930, 4.0),
    row("structured_clustered_distilled.keras", "fp32", 100_000, 0.9920, 4.0),
    row("structured_cqat_int8.tflite", "int8", 10_000, 0.992, 4.0),
]


def test_clustered_artifacts_and_unclustered_int8_files_are_listed_with_k_and_the_gzip_ratio():
    found = {r["name"]: r for r in clustering.facts(config.Config(), ROWS)["clustering"]}
    assert set(found) == {n["name"] for n in ROWS[1:]}
    assert found["structured_cqat_int8.tflite"]["clusters"] == config.ClusterConfig().clusters
    assert found["structured_cqat_int8.tflite"]["gzip_x_smaller"] == 20.0
    assert found["structured_qat_int8.tflite"]["clusters"] is None


def test_distilled_twins_are_paired_labels_only_first():
    facts = clustering.facts(config.Config(), ROWS)
    (pair,) = facts["distillation"]["pairs"]
    assert [m["name"] for m in pair] == ["structured_clustered.keras", "structured_clustered_distilled.keras"]
    text = clustering.section(facts)
    assert "## Clustering" in text and "## Distillation" in text and "alpha 0.5" in text


def test_the_size_frontier_says_each_goal_and_what_its_smallest_artifact_is_made_of():
    download = {"name": "structured_cqat_int8.tflite", "gzip_bytes": 14_600, "x_smaller": 15.3, "val_accuracy": 0.9926,
                "accuracy": 0.9931, "bits_per_weight": 4.0, "params": 18_502, "gzip_goal_bytes": 5_600}  # fmt: skip
    library = {"name": "structured_cqat_int8.tflite", "library_flash_bytes": 17_833, "weight_bytes": 12_000,
               "int8_weight_bytes": 18_432, "val_accuracy": 0.9926, "accuracy": 0.9931}  # fmt: skip
    goals = [
        {"key": "frontier_download_x", "limit": 40.0, "value": 15.3, "met": False},
        {"key": "frontier_lib_flash_kb", "limit": 12.0, "value": 17.833, "met": True},
    ]
    text = clustering.frontier_text({"frontier": {"download": download, "library": library}, "goals": goals})
    assert "15.3x smaller than baseline_fp32.tflite (goal >= 40x: not met)" in text
    assert "18,502 weights at 4.00 bits each are 9.3 KB" in text
    assert "17.8 KB of flash (goal <= 12 KB: met)" in text  # as the goal says, whatever the figures
    assert "12.0 KB of weights (18.4 KB as plain int8) and 5.8 KB of kernels" in text
    assert "`make sweep` measures narrower models" in text
    assert clustering.frontier_text({"goals": goals}) == ""
