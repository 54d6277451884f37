"""The artifact registry: every model file the pipeline builds, declared once, and every stage.

    python -m pipeline.artifacts            # the registry as a table

One ``Artifact`` per model file: its name, the artifact it is made from, the stage that writes
it, its precision, and how it is made (a recipe of that stage and its parameters). The QAT
stage takes its models from here, export loops over its entries, the benchmark measures them
all, the tests are parametrised over them, and the Makefile's rules are generated from them
and from ``STAGES`` (``pipeline.deps``). A new variant is one entry here, plus its stage code
if it is a new technique and its config if it has knobs.

This module imports nothing but the standard library: Make reads it before the virtualenv exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("keras", "tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int8-weights")


@dataclass(frozen=True)
class Artifact:
    name: str  # file name in the artifacts folder; its suffix is its format
    parent: str | None  # the artifact it is made from (None: made from the data)
    stage: str  # the stage module that writes it, pipeline.<stage>
    precision: str  # one of PRECISIONS: of the weights, and of the compute for int8
    recipe: str  # how the stage makes it, e.g. "tflite" or "tf2onnx" (the stage's RECIPES)
    about: str  # one line for people: what it is
    params: dict = field(default_factory=dict)  # the recipe's parameters

    @property
    def format(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    def describe(self) -> dict:
        """What it is and how it is made: the stage's recipe stamp (a change reruns it)."""
        keys = ("name", "parent", "stage", "precision", "recipe", "params")
        return {k: getattr(self, k) for k in keys} | {"format": self.format}


def _a(  # noqa: PLR0917 (a registry row reads best as one line of positional fields)
    name: str, parent: str | None, stage: str, precision: str, recipe: str, about: str, **params
) -> Artifact:
    return Artifact(name, parent, stage, precision, recipe, about, params)


ARTIFACTS: tuple[Artifact, ...] = (
    # Keras: trained and compressed models.
    _a("baseline.keras", None, "train", "fp32", "train", "the larger CNN, trained"),
    _a(
        "pruned.keras", "baseline.keras", "prune", "fp32", "magnitude_prune", "a copy of the baseline, magnitude-pruned"
    ),
    _a(
        "structured.keras",
        "baseline.keras",
        "structured",
        "fp32",
        "narrow",
        "the baseline's strongest filters and units, fine-tuned",
    ),
    _a(
        "qat.keras", "baseline.keras", "qat", "fp32", "qat", "the baseline, quantisation-aware", preserve_sparsity=False
    ),
    _a(
        "pruned_qat.keras",
        "pruned.keras",
        "qat",
        "fp32",
        "qat",
        "the pruned model, sparsity-preserving QAT",
        preserve_sparsity=True,
    ),
    _a(
        "structured_qat.keras",
        "structured.keras",
        "qat",
        "fp32",
        "qat",
        "the structured model, QAT; a second epoch lets the narrow model settle its int8 ranges",
        preserve_sparsity=False,
        epochs=2,
    ),
    # TFLite, from TensorFlow's converter; int8 ones take and give int8.
    _a("baseline_fp32.tflite", "baseline.keras", "export", "fp32", "tflite", "the baseline in TFLite"),
    _a("baseline_fp16.tflite", "baseline.keras", "export", "fp16", "tflite", "float16 weights"),
    _a("baseline_dynamic.tflite", "baseline.keras", "export", "dynamic", "tflite", "dynamic-range int8 weights"),
    _a(
        "baseline_ptq_int8.tflite",
        "baseline.keras",
        "export",
        "int8",
        "tflite",
        "full-integer post-training int8",
        calibrate=True,
    ),
    _a("pruned_fp32.tflite", "pruned.keras", "export", "fp32", "tflite", "the pruned model in TFLite"),
    _a("qat_int8.tflite", "qat.keras", "export", "int8", "tflite", "the QAT baseline, int8"),
    _a("pruned_qat_int8.tflite", "pruned_qat.keras", "export", "int8", "tflite", "the pruned QAT model, int8"),
    _a("structured_fp32.tflite", "structured.keras", "export", "fp32", "tflite", "the structured model in TFLite"),
    _a(
        "structured_qat_int8.tflite",
        "structured_qat.keras",
        "export",
        "int8",
        "tflite",
        "the structured QAT model, int8",
    ),
    # ONNX: tf2onnx, onnxruntime's quantiser, int8 TFLite converted (int8 weights, not fake-quant floats), graph passes.
    _a("baseline_fp32.onnx", "baseline.keras", "export", "fp32", "tf2onnx", "the baseline in ONNX"),
    _a(
        "baseline_ptq_int8.onnx",
        "baseline_fp32.onnx",
        "export",
        "int8",
        "ort_static_int8",
        "onnxruntime static int8: QDQ, uint8 x uint8, exact on every CPU",
    ),
    _a(
        "pruned_qat_int8.onnx",
        "pruned_qat_int8.tflite",
        "export",
        "int8",
        "from_tflite",
        "the pruned QAT model, int8 (as uint8: exact on every CPU)",
        passes=("uint8_offset",),
    ),
    _a("structured_fp32.onnx", "structured.keras", "export", "fp32", "tf2onnx", "the structured model in ONNX"),
    _a(
        "structured_qat_int8.onnx",
        "structured_qat_int8.tflite",
        "export",
        "int8",
        "from_tflite",
        "the structured QAT model, int8 (as uint8: exact on every CPU)",
        passes=("uint8_offset",),
    ),
    _a(
        "structured_w8.onnx",
        "structured_fp32.onnx",
        "export",
        "int8-weights",
        "graph_passes",
        "int8 weights, float compute, logits out, no layout ops",
        passes=("drop_softmax", "nchw_input", "flatten_channels_first", "int8_weights"),
    ),
)
BY_NAME = {a.name: a for a in ARTIFACTS}
BASELINE = "baseline.keras"  # what every accuracy is compared with


def of_stage(stage: str) -> list[Artifact]:
    return [a for a in ARTIFACTS if a.stage == stage]


# Names a stage's ``inputs`` may use for a set of registry artifacts.
SELECTORS = {
    "*": lambda a: True,
    "int8.tflite": lambda a: a.format == "tflite" and a.precision == "int8",  # what a microcontroller runs
    "onnx": lambda a: a.format == "onnx",
    "tflite": lambda a: a.format == "tflite",
}


def select(selector: str) -> list[Artifact]:
    return [a for a in ARTIFACTS if SELECTORS[selector](a)]


def get(name: str) -> Artifact:
    if name not in BY_NAME:
        raise KeyError(f"{name!r} is not in the registry (pipeline/artifacts.py); known: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def lineage(name: str) -> list[str]:
    """``name`` and its ancestors, nearest first."""
    chain = [name]
    while BY_NAME[chain[-1]].parent:
        chain.append(BY_NAME[chain[-1]].parent)
    return chain


@dataclass(frozen=True)
class Stage:
    """A module ``pipeline.<name>``, what it reads and what it writes besides registry artifacts."""

    name: str
    reads: tuple[str, ...]  # config sections (``config.sections``): a change to one reruns the stage
    inputs: tuple[str, ...] = ()  # files it reads besides its artifacts' parents, SELECTORS of artifacts,
    # or globs of repository files it packs ("runtime/*")
    outputs: tuple[str, ...] = ()  # files it writes besides registry artifacts; the first, written last, is primary
    per_artifact: bool = False  # one command per artifact: ``python -m pipeline.<name> NAME``
    after: tuple[str, ...] = ()  # files that must exist first, without their changes rerunning it (order-only)
    about: str = ""


DATA = "data/mnist.npz"
TRAINING = ("seed", "data", "train")  # every training stage batches, shifts and validates as train says
STAGES: tuple[Stage, ...] = (
    Stage("data", (), outputs=(DATA,), about="fetch and verify MNIST"),
    Stage("train", TRAINING, inputs=(DATA,), about="train the baseline"),
    Stage("prune", (*TRAINING, "prune", "distill"), inputs=(DATA, "sensitivity.json"), about="magnitude pruning"),
    Stage("structured", (*TRAINING, "structured", "distill"), inputs=(DATA, "sensitivity.json"), about="narrowing"),
    Stage("qat", (*TRAINING, "qat", "distill"), inputs=(DATA,), per_artifact=True, about="quantisation-aware training"),
    Stage("export", ("seed", "data", "export"), inputs=(DATA,), per_artifact=True, about="TFLite and ONNX"),
    Stage(
        "benchmark",
        ("data", "bench"),
        inputs=(DATA, "*"),
        outputs=("benchmark.json", "benchmark_predictions.npz"),
        about="accuracy, size and latency of every artifact",
    ),
    Stage(
        "sensitivity",
        ("seed", "data", "sensitivity"),
        inputs=(DATA, "baseline.keras"),
        outputs=("sensitivity.json",),
        about="per-layer validation accuracy when pruned, narrowed or int8-quantised alone; no training",
    ),
    Stage(
        "mcu",
        ("data",),
        inputs=(DATA, "int8.tflite"),
        outputs=("mcu.json",),
        after=("benchmark.json",),  # two minutes of CPU: never beside the benchmark while it times
        about="the int8 models in TFLite Micro: accuracy, flash, arena",
    ),
    Stage(
        "parity",
        ("data", "parity"),
        inputs=(DATA, "onnx", "tflite", "web/*"),  # web/: the wasm tier runs web/parity.mjs
        outputs=("parity.json",),
        after=("benchmark.json",),  # minutes of emulation: never beside the benchmark while it times
        about="every ONNX artifact on every CPU tier (emulated AVX2, SSE, aarch64, wasm) and its TFLite twin",
    ),
    Stage(
        "deploy",
        ("deploy",),
        inputs=("benchmark.json", "mcu.json", "parity.json"),
        outputs=("deploy.json", "model.onnx", "mcu/model_data.h", "mcu/model_data.cc", "mcu/README.md"),
        about="pick per target; model.onnx and the MCU firmware files",
    ),
    Stage(
        "web",
        (),
        inputs=("benchmark.json", "deploy.json", "web/*"),
        outputs=("web/index.html",),
        about="the draw-a-digit page on onnxruntime-web, a static site (skipped in one line without npm)",
    ),
    Stage(
        "device_kit",
        (),
        inputs=(DATA, "benchmark.json", "deploy.json", "runtime/*"),
        outputs=("device-kit.tar.gz",),
        about="runtime/, the candidate ONNX models, 500 labelled test PNGs and a README, for any device",
    ),
    Stage(
        "report",
        (),
        inputs=(DATA, "benchmark.json", "deploy.json", "sensitivity.json", "parity.json"),  # primaries: others first
        outputs=("report.json", "report.md", "MODEL_CARD.md"),
        about="render the report",
    ),
)
STAGE = {s.name: s for s in STAGES}


def outputs_of(stage: Stage) -> list[str]:
    """Every file ``stage`` writes: its registry artifacts, then its other outputs."""
    return [a.name for a in of_stage(stage.name)] + list(stage.outputs)


def primary(stage: Stage) -> str:
    """The file whose presence means the stage finished: what Make tracks and dependents name."""
    return stage.outputs[0] if stage.outputs else of_stage(stage.name)[0].name


def main() -> None:
    rows = [("artifact", "parent", "stage", "precision", "recipe", "what it is")]
    rows += [(a.name, a.parent or "(data)", a.stage, a.precision, a.recipe, a.about) for a in ARTIFACTS]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
