"""ONNX files: the one place that writes ``metadata_props`` (it merges), and which ONNX files a folder ships.

    onnx_io.save(model, Path("x.onnx"), ModelSpec(source="x.keras"))    # stamp, check, write atomically
    onnx_io.set_metadata(model, {"test_accuracy": "0.994"})               # add keys, keep the others
    onnx_io.onnx_files(Path("artifacts"))                                 # model.onnx and every ONNX artifact

Every ONNX model the pipeline writes goes through ``save``; the deploy stage adds its
measured figures to the deployed copy with ``set_metadata``. Keys already on the model are
kept unless given again, and the result must still be a valid ``runtime.metadata.ModelSpec``.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from pipeline.core import stage
from runtime.metadata import MetadataError, ModelSpec

DEPLOYED = "model.onnx"  # the deployed model: a copy of the pick with its accuracies in its metadata


def onnx_files(folder: Path) -> list[Path]:
    """``model.onnx`` and every ONNX artifact ``benchmark.json`` lists, in registry order, each checked to exist:
    what the web site and the device kit ship."""
    bench = folder / "benchmark.json"
    if not bench.is_file():
        raise stage.PipelineError(f"{bench} is missing: run `make all` first")
    names = [a["name"] for a in json.loads(bench.read_text())["artifacts"] if a["format"] == "onnx"]
    paths = [folder / name for name in dict.fromkeys([DEPLOYED, *names])]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise stage.PipelineError(f"{', '.join(missing)} missing in {folder}: run `make all` first")
    return paths


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model: onnx.ModelProto, props: dict[str, str] | ModelSpec) -> onnx.ModelProto:
    """Merge ``props`` into the model's metadata_props; raise PipelineError if the result is not a ModelSpec."""
    new = props.to_props() if isinstance(props, ModelSpec) else {k: str(v) for k, v in props.items()}
    merged = metadata(model) | new
    try:
        ModelSpec.from_props(merged)
    except MetadataError as e:
        raise stage.PipelineError(f"{model.graph.name or 'model'}: {e}") from None
    onnx.helper.set_model_props(model, merged)
    return model


def save(model: onnx.ModelProto, path: Path, spec: ModelSpec | None = None, doc: str | None = None) -> None:
    """Stamp ``spec`` (merged) and ``doc`` (the model's doc_string) on ``model``, check it, write it atomically."""
    if spec is not None:
        set_metadata(model, spec)
    if doc is not None:
        model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)  # with shape inference: what other consumers run
    stage.write_bytes(path, model.SerializeToString())
