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
