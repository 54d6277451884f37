"""The artifact registry: every model file the pipeline builds, declared once, and every stage.

    python -m pipeline.artifacts            # the registry as a table

One ``Artifact`` per model file: its name, the artifact it is made from, its precision, and
its recipe: a frozen dataclass naming the technique and the stage that runs it, whose fields
are the technique's parameters (type, default, meaning). A parameter may default to a config
field (``FromConfig("qat.epochs")``), so ``SET=qat.epochs=3`` reaches every entry that uses it;
a typo in a parameter fails when this module loads, and ``check`` (run by ``pipeline.core.deps``
before Make reads a rule) rejects an entry that cannot work. Every stage that writes registry
artifacts runs once per entry (``python -m pipeline.<stage> NAME``), with its output path and
parameters from the entry; the benchmark measures them all, the tests are parametrised over
them, and the Makefile's rules are generated from them and from ``STAGES``. A new variant is
one entry here; a new technique is a recipe class plus its stage code.

This module imports nothing but the standard library: Make reads it before the virtualenv exists.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

FORMATS = ("keras", "tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int8-weights")


@dataclass(frozen=True)
class FromConfig:
    """A recipe parameter whose value is a config field's, e.g. ``FromConfig("qat.epochs")``: ``SET=`` reaches it."""

    key: str  # "section.field" of pipeline/config.py

    def __str__(self) -> str:
        return f"config {self.key}"


@dataclass(frozen=True)
class Recipe:
    """How a stage makes an artifact: each subclass is one technique, its fields its parameters."""

    KIND: ClassVar[str] = ""  # the stage's name for the technique (its RECIPES key, where it has several)
    STAGE: ClassVar[str] = ""  # the stage that runs it

    def resolved(self, cfg: object) -> Recipe:
        """This recipe with every ``FromConfig`` parameter replaced by that field's value in ``cfg``."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, FromConfig):
                value = _lookup(cfg, value.key)
            values[f.name] = value
        return replace(self, **values)

    def params(self) -> dict:
        """The parameters as given (a config field named as ``config section.key``): what the stamp records."""
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), FromConfig) else v) for f in fields(self)}


def _lookup(cfg: object, key: str) -> object:
    for part in key.split("."):
        if not hasattr(cfg, part):
            raise ValueError(f"config has no field {key!r} (pipeline/config.py)")
        cfg = getattr(cfg, part)
    return cfg


@dataclass(frozen=True)
class Train(Recipe):
    """The larger CNN from scratch; every setting is config ``train``."""

    KIND = "train"
    STAGE = "train"


@dataclass(frozen=True)
class MagnitudePrune(Recipe):
    """tfmot magnitude pruning of the parent, per-layer shares from the sensitivity (config ``prune``)."""

    final_sparsity: float | FromConfig = FromConfig("prune.final_sparsity")  # fraction of kernel weights made 0

    KIND = "magnitude_prune"
    STAGE = "prune"


@dataclass(frozen=True)
class Narrow(Recipe):
    """The parent's strongest filters and units by L1 norm, fine-tuned (config ``structured``)."""

    widths: tuple[int, ...] | FromConfig | None = FromConfig("structured.widths")  # conv1, conv2, dense1, dense2

    KIND = "narrow"
    STAGE = "structured"


CENTROID_INITS = ("linear", "kmeans_plus_plus", "density_based", "random")  # tfmot's CentroidInitialization


@dataclass(frozen=True)
class Cluster(Recipe):
    """tfmot weight clustering of the parent's kernels to k centroids, fine-tuned, stripped (config ``cluster``)."""

    clusters: int | FromConfig = FromConfig("cluster.clusters")  # k: distinct values per layer (per channel, below)
    # Each Conv2D output channel gets its own k centroids: TFLite quantises convolutions per channel, so
    # that is what an int8 palette per channel can keep. tfmot clusters Dense kernels whole either way.
    per_channel: bool = True
    init: str = "kmeans_plus_plus"  # how the centroids start: one of CENTROID_INITS
    preserve_sparsity: bool = False  # the parent's zeros stay zero (sparsity-preserving clustering)
    epochs: int | FromConfig = FromConfig("cluster.epochs")  # fine-tuning epochs with the centroids trainable
    # Weight of the baseline's soft targets in that fine-tuning (temperature: config distill.temperature)
    distill_alpha: float | FromConfig = FromConfig("distill.alpha")

    KIND = "cluster"
    STAGE = "cluster"

    def __post_init__(self) -> None:
        if self.init not in CENTROID_INITS:
            raise ValueError(f"Cluster(init={self.init!r}) must be one of {CENTROID_INITS}")
        if not isinstance(self.distill_alpha, FromConfig) and not 0 <= self.distill_alpha <= 1:
            raise ValueError(f"Cluster(distill_alpha={self.distill_alpha}) must be in [0, 1]")


@dataclass(frozen=True)
class QAT(Recipe):
    """tfmot quantisation-aware fine-tuning of the parent (config ``qat``)."""

    preserve_sparsity: bool = False  # PQAT: the sparsity-preserving scheme keeps the parent's zeros
    # CQAT: the cluster-preserving scheme keeps a clustered parent's centroids (PCQAT with preserve_sparsity)
    preserve_clusters: bool = False
    epochs: int | FromConfig = FromConfig("qat.epochs")  # fine-tuning epochs

    KIND = "qat"
    STAGE = "qat"


@dataclass(frozen=True)
class TFLite(Recipe):
    """TensorFlow's TFLite converter at the artifact's precision."""

    calibrate: bool = False  # full-integer: calibrate activations on config export.representative_samples

    KIND = "tflite"
    STAGE = "export"


@dataclass(frozen=True)
class Tf2Onnx(Recipe):
    """tf2onnx of a Keras model, at config export.onnx_opset."""

    KIND = "tf2onnx"
    STAGE = "export"


@dataclass(frozen=True)
class OrtStaticInt8(Recipe):
    """onnxruntime's static quantiser: QDQ, uint8 x uint8, calibrated like TFLite(calibrate=True)."""

    KIND = "ort_static_int8"
    STAGE = "export"


@dataclass(frozen=True)
class FromTflite(Recipe):
    """tf2onnx of an int8 TFLite model (int8 weights, not fake-quantised floats), then graph passes."""

    passes: tuple[str, ...] = ()  # pipeline/formats/graph.py passes, in order

    KIND = "from_tflite"
    STAGE = "export"


@dataclass(frozen=True)
class GraphPasses(Recipe):
    """The parent ONNX model with pipeline/formats/graph.py's passes applied."""

    passes: tuple[str, ...] = ()  # in order

    KIND = "graph_passes"
    STAGE = "export"


@dataclass(frozen=True)
class Artifact:
    name: str  # file name in the artifacts folder; its suffix is its format
    parent: str | None  # the artifact it is made from (None: made from the data)
    precision: str  # one of PRECISIONS: of the weights, and of the compute for int8
    recipe: Recipe  # how it is made, with its parameters; recipe.STAGE writes it
    about: str  # one line for people: what it is

    @property
    def stage(self) -> str:
        return self.recipe.STAGE

    @property
    def kind(self) -> str:
        return self.recipe.KIND

    @property
    def params(self) -> dict:
        return self.recipe.params()

    @property
    def format(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    def describe(self) -> dict:
        """What it is and how it is made: the stage's recipe stamp (a change reruns it)."""
        return {
            "name": self.name,
            "parent": self.parent,
            "stage": self.stage,
            "precision": self.precision,
            "recipe": self.kind,
            "params": self.params,
            "format": self.format,
        }


# int8 TFLite as ONNX that onnxruntime runs on integer kernels only (pipeline/formats/graph.py): uint8 x uint8
# (exact on every x86 CPU, VNNI or not), and the QAT models' ReLUs as clips of the integers (else those layers
# run in float, whose rounding follows the CPU).
INTEGER_ONLY = ("uint8_offset", "relu_after_quantize")

ARTIFACTS: tuple[Artifact, ...] = (
    # Keras: trained and compressed models.
    Artifact("baseline.keras", None, "fp32", Train(), "the larger CNN, trained"),
    Artifact("pruned.keras", "baseline.keras", "fp32", MagnitudePrune(), "a copy of the baseline, magnitude-pruned"),
    Artifact(
        "structured.keras", "baseline.keras", "fp32", Narrow(), "the baseline's strongest filters and units, fine-tuned"
    ),
    Artifact("qat.keras", "baseline.keras", "fp32", QAT(), "the baseline, quantisation-aware"),
    Artifact(
        "pruned_qat.keras",
        "pruned.keras",
        "fp32",
        QAT(preserve_sparsity=True),
        "the pruned model, sparsity-preserving QAT",
    ),
    Artifact(
        "structured_qat.keras",
        "structured.keras",
        "fp32",
        QAT(epochs=FromConfig("qat.structured_epochs")),
        "the structured model, QAT; more epochs let the narrow model settle its int8 ranges",
    ),
    Artifact(
        "structured_clustered.keras",
        "structured.keras",
        "fp32",
        Cluster(),
        "the structured model clustered to k values per conv channel and per dense layer",
    ),
    Artifact(
        "structured_clustered_distilled.keras",
        "structured.keras",
        "fp32",
        Cluster(distill_alpha=0.5),  # the sweep's weight
        "structured_clustered.keras's twin, fine-tuned by distillation from the baseline: the report compares them",
    ),
    Artifact(
        "pruned_clustered.keras",
        "pruned.keras",
        "fp32",
        # Whole kernels: PCQAT keeps per-channel centroids only where every channel has as many (+-1), and
        # pruned channels do not, so it would treat the conv kernels as one set and mix channels' values.
        Cluster(per_channel=False, preserve_sparsity=True),
        "the pruned model clustered to k values per layer, its zeros kept",
    ),
    Artifact(
        "structured_cqat.keras",
        "structured_clustered.keras",
        "fp32",
        QAT(preserve_clusters=True, epochs=FromConfig("qat.structured_epochs")),
        "the clustered structured model, cluster-preserving QAT (CQAT)",
    ),
    Artifact(
        "pruned_pcqat.keras",
        "pruned_clustered.keras",
        "fp32",
        QAT(preserve_sparsity=True, preserve_clusters=True),
        "the clustered pruned model, sparsity- and cluster-preserving QAT (PCQAT)",
    ),
    # TFLite, from TensorFlow's converter; int8 ones take and give int8.
    Artifact("baseline_fp32.tflite", "baseline.keras", "fp32", TFLite(), "the baseline in TFLite"),
    Artifact("baseline_fp16.tflite", "baseline.keras", "fp16", TFLite(), "float16 weights"),
    Artifact("baseline_dynamic.tflite", "baseline.keras", "dynamic", TFLite(), "dynamic-range int8 weights"),
    Artifact(
        "baseline_ptq_int8.tflite", "baseline.keras", "int8", TFLite(calibrate=True), "full-integer post-training int8"
    ),
    Artifact("pruned_fp32.tflite", "pruned.keras", "fp32", TFLite(), "the pruned model in TFLite"),
    Artifact("qat_int8.tflite", "qat.keras", "int8", TFLite(), "the QAT baseline, int8"),
    Artifact("pruned_qat_int8.tflite", "pruned_qat.keras", "int8", TFLite(), "the pruned QAT model, int8"),
    Artifact("structured_fp32.tflite", "structured.keras", "fp32", TFLite(), "the structured model in TFLite"),
    Artifact("structured_qat_int8.tflite", "structured_qat.keras", "int8", TFLite(), "the structured QAT model, int8"),
    Artifact("structured_cqat_int8.tflite", "structured_cqat.keras", "int8", TFLite(), "the CQAT model, int8"),
    Artifact("pruned_pcqat_int8.tflite", "pruned_pcqat.keras", "int8", TFLite(), "the PCQAT model, int8"),
    # ONNX: tf2onnx, onnxruntime's quantiser, int8 TFLite converted (int8 weights, not fake-quant floats), graph passes.
    Artifact("baseline_fp32.onnx", "baseline.keras", "fp32", Tf2Onnx(), "the baseline in ONNX"),
    Artifact(
        "baseline_ptq_int8.onnx",
        "baseline_fp32.onnx",
        "int8",
        OrtStaticInt8(),
        "onnxruntime static int8: QDQ, uint8 x uint8, exact on every CPU",
    ),
    Artifact(
        "pruned_qat_int8.onnx",
        "pruned_qat_int8.tflite",
        "int8",
        FromTflite(passes=INTEGER_ONLY),
        "the pruned QAT model, int8 (as uint8: exact on every CPU)",
    ),
    Artifact("structured_fp32.onnx", "structured.keras", "fp32", Tf2Onnx(), "the structured model in ONNX"),
    Artifact(
        "structured_qat_int8.onnx",
        "structured_qat_int8.tflite",
        "int8",
        FromTflite(passes=INTEGER_ONLY),
        "the structured QAT model, int8 (as uint8: exact on every CPU)",
    ),
    Artifact(
        "structured_cqat_int8.onnx",
        "structured_cqat_int8.tflite",
        "int8",
        FromTflite(passes=INTEGER_ONLY),
        "the CQAT model, int8 (as uint8: exact on every CPU)",
    ),
    Artifact(
        "pruned_pcqat_int8.onnx",
        "pruned_pcqat_int8.tflite",
        "int8",
        FromTflite(passes=INTEGER_ONLY),
        "the PCQAT model, int8 (as uint8: exact on every CPU)",
    ),
    Artifact(
        "structured_w8.onnx",
        "structured_fp32.onnx",
        "int8-weights",
        GraphPasses(passes=("drop_softmax", "nchw_input", "flatten_channels_first", "int8_weights")),
        "int8 weights, float compute, logits out, no layout ops",
    ),
)
BY_NAME = {a.name: a for a in ARTIFACTS}
BASELINE = "baseline.keras"  # what every accuracy is compared with


def check(cfg: object) -> None:
    """ValueError naming the first entry that cannot work: an unknown stage, format or precision, a parent
    that is not declared before it, or a ``FromConfig`` key that ``cfg`` lacks. Run before Make reads the rules."""
    seen = set()
    for a in ARTIFACTS:
        problem = (
            f"format {a.format!r} is not one of {FORMATS}" if a.format not in FORMATS else
            f"precision {a.precision!r} is not one of {PRECISIONS}" if a.precision not in PRECISIONS else
            f"its recipe's stage {a.stage!r} is not a stage" if a.stage not in {s.name for s in STAGES} else
            f"its parent {a.parent!r} is not declared before it" if a.parent and a.parent not in seen else
            "it is declared twice" if a.name in seen else None
        )  # fmt: skip
        if problem:
            raise ValueError(f"registry entry {a.name}: {problem}")
        try:
            a.recipe.resolved(cfg)
        except ValueError as e:
            raise ValueError(f"registry entry {a.name}: {e}") from None
        seen.add(a.name)


def reference(fmt: str) -> str:
    """The baseline's own fp32 export in ``fmt``: what other artifacts' sizes and speeds are compared with."""
    return next(a.name for a in ARTIFACTS if (a.parent, a.format, a.precision) == (BASELINE, fmt, "fp32"))


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
    """A module ``pipeline.<name>``, what it reads and what it writes besides registry artifacts. A stage
    with registry artifacts runs one command per artifact; one without, one command for its outputs."""

    name: str
    reads: tuple[str, ...]  # config sections (``config.sections``): a change to one reruns the stage
    inputs: tuple[str, ...] = ()  # files it reads besides its artifacts' parents, SELECTORS of artifacts,
    # or globs of repository files it packs ("runtime/*")
    outputs: tuple[str, ...] = ()  # files it writes besides registry artifacts; the first, written last, is primary
    after: tuple[str, ...] = ()  # files that must exist first, without their changes rerunning it (order-only)
    about: str = ""


DATA = "data/mnist.npz"
TRAINING = ("seed", "data", "train")  # every training stage batches, shifts and validates as train says
STAGES: tuple[Stage, ...] = (
    Stage("data", (), outputs=(DATA,), about="fetch and verify MNIST"),
    Stage("train", TRAINING, inputs=(DATA,), about="train the baseline"),
    Stage("prune", (*TRAINING, "prune", "distill"), inputs=(DATA, "sensitivity.json"), about="magnitude pruning"),
    Stage("structured", (*TRAINING, "structured", "distill"), inputs=(DATA, "sensitivity.json"), about="narrowing"),
    Stage("cluster", (*TRAINING, "cluster", "distill"), inputs=(DATA,), about="weight clustering"),
    Stage("qat", (*TRAINING, "qat", "distill"), inputs=(DATA,), about="quantisation-aware training"),
    Stage("export", ("seed", "data", "export"), inputs=(DATA,), about="TFLite and ONNX"),
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
        "firmware",
        ("data", "firmware"),
        inputs=(DATA, "int8.tflite", "pipeline/formats/c/*", "pipeline/formats/c/cortex_m/*"),
        outputs=("firmware.json",),
        after=("benchmark.json",),
        about="each int8 model as generated C: bit-exact with TFLite Micro, built and run on emulated Cortex-M",
    ),
    Stage(
        "deploy",
        ("deploy",),
        inputs=("benchmark.json", "mcu.json", "parity.json", "firmware.json"),
        outputs=(
            "deploy.json",
            "model.onnx",
            "mcu/model_data.h",
            "mcu/model_data.cc",
            "mcu/README.md",
            *(f"mcu/lib/{name}" for name in ("mnist_model.c", "mnist_model.h", "nn_int8.c", "nn_int8.h")),
        ),
        about="pick per target; model.onnx and the MCU firmware files",
    ),
    Stage(
        "web",
        (),
        # the page reads preprocess.json and runs ink.c, built for WebAssembly
        inputs=("benchmark.json", "deploy.json", "web/*", "runtime/preprocess*.json", "runtime/native/*.c"),
        outputs=("web/index.html",),
        about="the draw-a-digit page on onnxruntime-web, a static site (skipped in one line without npm or clang)",
    ),
    Stage(
        "images",
        ("data",),
        inputs=(DATA, "deploy.json", "runtime/*"),  # deploy.json: deploy wrote model.onnx with it
        outputs=("images.json",),
        after=("benchmark.json",),  # it times: never beside the benchmark
        about="the runtime's image path on user-style images: decode vs to_mnist per set, accuracy, images/s",
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
        ("cluster", "distill"),  # k and the distillation weights of the registry's recipes
        inputs=(
            *(DATA, "benchmark.json", "deploy.json", "sensitivity.json", "parity.json", "firmware.json", "mcu.json"),
            "images.json",
        ),
        outputs=("report.json", "report.md", "MODEL_CARD.md"),
        about="render the report",
    ),
)
STAGE = {s.name: s for s in STAGES}


def outputs_of(stage: Stage) -> list[str]:
    """Every file ``stage`` writes: its registry artifacts, then its other outputs."""
    return [a.name for a in of_stage(stage.name)] + list(stage.outputs)


def primary(stage: Stage) -> str:
    """The file whose presence means a stage without registry artifacts finished: what Make tracks."""
    return stage.outputs[0]


def main() -> None:
    rows = [("artifact", "parent", "stage", "precision", "recipe", "what it is")]
    how = lambda a: f"{a.kind}({', '.join(f'{k}={v}' for k, v in a.params.items())})"  # noqa: E731
    rows += [(a.name, a.parent or "(data)", a.stage, a.precision, how(a), a.about) for a in ARTIFACTS]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
