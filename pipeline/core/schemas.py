"""JSON Schemas of what the stages hand each other: benchmark, parity, deploy and report JSON.

    schemas.check(json.loads(path.read_text()), "benchmark", path)   # PipelineError naming the first problem

A stage that reads another's JSON checks it first, so a stale or hand-edited file is one
clear line ("rerun `make bench`") instead of a KeyError deep in the code; the tests check
what the stages write against the same schemas.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import artifacts
from pipeline.core import stage

# The version each stage writes into its JSON's "schema" field; a reader rejects any other.
VERSIONS = {"benchmark": 2, "parity": 1}

NUMBER = {"type": "number"}
LATENCY = {
    "type": "object",
    "required": ["batch", "threads", "runs", "mean", "p50", "p90", "p99"],
    "properties": {k: {"type": "integer"} for k in ("batch", "threads", "runs")}
    | {k: NUMBER for k in ("mean", "p50", "p90", "p99")},
}
OPTIONAL_LATENCY = {"oneOf": [LATENCY, {"type": "null"}]}
ARTIFACT = {
    "type": "object",
    "required": [
        "name",
        "path",
        "format",
        "precision",
        "parent",
        "stage",
        "sparsity",
        "params",
        "size_bytes",
        "gzip_bytes",
        "accuracy",
        "val_accuracy",
        "errors",
        "agreement_with_baseline",
        "latency_us",
        "throughput_ips",
        "runtime",
        "macs",
    ],
    "properties": {
        "name": {"type": "string"},
        "format": {"enum": list(artifacts.FORMATS)},
        "precision": {"enum": list(artifacts.PRECISIONS)},
        "parent": {"type": ["string", "null"]},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "val_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "errors": {"type": "integer", "minimum": 0},
        "size_bytes": {"type": "integer", "minimum": 1},
        "gzip_bytes": {"type": "integer", "minimum": 1},
        "latency_us": OPTIONAL_LATENCY,
        "latency_us_ort_defaults": OPTIONAL_LATENCY,
        "macs": {"type": ["integer", "null"]},
        "runtime": {"type": "string"},
    },
}
BENCHMARK = {
    "type": "object",
    "required": ["schema", "dataset", "environment", "baseline", "settings", "artifacts"],
    "properties": {
        "schema": {"const": VERSIONS["benchmark"]},
        "dataset": {"type": "object", "required": ["name", "test_samples", "validation_samples"]},
        "environment": {
            "type": "object",
            "required": ["cpu", "cores", "python", "versions"],
            "properties": {"cores": {"type": "integer"}, "versions": {"additionalProperties": {"type": "string"}}},
        },
        "baseline": {"type": "string"},
        "artifacts": {"type": "array", "minItems": 1, "items": ARTIFACT},
    },
}
TARGET = {
    "type": "object",
    "required": ["target", "format", "speed", "rule", "pick", "qualified", "fallback", "test_pick"],
    "properties": {"pick": {"type": "string"}, "qualified": {"type": "array"}, "fallback": {"type": "boolean"}},
}
GOAL = {
    "type": "object",
    "required": ["target", "key", "op", "limit", "value", "met"],
    "properties": {"met": {"type": ["boolean", "null"]}},
}
DEPLOY = {
    "type": "object",
    "required": ["deployed", "deployed_target", "baseline", "max_accuracy_drop_pp", "targets", "comparison", "goals"],
    "properties": {
        "targets": {"type": "array", "minItems": 1, "items": TARGET},
        "goals": {"type": "array", "items": GOAL},
    },
}
REPORT = {
    "type": "object",
    "required": [*BENCHMARK["required"], "deployed", "verdict", "selection", "comparison", "goals", "targets"],
    "properties": BENCHMARK["properties"]
    | {
        "deployed": {"type": "string"},
        "verdict": {"type": "string", "minLength": 1},
        "selection": {"type": "object", "required": ["rule", "max_accuracy_drop_pp", "qualified", "fallback"]},
        "goals": DEPLOY["properties"]["goals"],
        "targets": DEPLOY["properties"]["targets"],
    },
}
CELL = {
    "type": "object",
    "required": ["digits_differ", "max_abs_dprob", "bit_exact"],
    "properties": {
        "digits_differ": {"type": "integer"},
        "max_abs_dprob": NUMBER,
        "bit_exact": {"type": ["boolean", "null"]},
    },
}
PARITY = {
    "type": "object",
    "required": ["schema", "images", "sessions", "tiers", "artifacts"],
    "properties": {
        "schema": {"const": VERSIONS["parity"]},
        "images": {"type": "object", "required": ["count", "validation", "test"]},
        "tiers": {
            "type": "array",
            "items": {"type": "object", "required": ["key", "name", "how", "status"]},
        },
        "artifacts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "precision", "tiers", "twins", "agree"],
                "properties": {
                    "tiers": {"additionalProperties": {"additionalProperties": CELL}},
                    "twins": {"additionalProperties": CELL},
                    "agree": {"type": "boolean"},
                },
            },
        },
    },
}
SCHEMAS = {"benchmark": BENCHMARK, "deploy": DEPLOY, "report": REPORT, "parity": PARITY}
REMAKE = {"benchmark": "make bench", "deploy": "make deploy", "report": "make report", "parity": "make parity"}


def check(document: dict, kind: str, path: Path | str) -> dict:
    """``document`` if it matches the schema of ``kind``; else PipelineError naming the first problem."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise stage.PipelineError(f"{path}: {where}: {error.message}; rerun `{REMAKE[kind]}`")
    return document
