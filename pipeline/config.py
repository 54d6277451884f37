"""Every knob of the pipeline, in one place, and command-line overrides of any of them.

    python -m pipeline.config                                  # the resolved config as JSON
    python -m pipeline.config --set prune.final_sparsity=0.9   # ... with an override
    make all SET="prune.final_sparsity=0.9 train.epochs=15"    # the same for a whole run

Two profiles share these dataclasses: ``default`` (the real run) and ``smoke`` (a few
thousand images, one epoch per stage, used by the tests). ``PROFILE`` picks one;
``ARTIFACTS`` overrides where the stages read and write; ``SET`` (or ``--set`` on any
stage) overrides single fields, parsed to the field's type. Values are checked when the
config is built, so an unknown key or a bad value stops the run before any work starts.
Each top-level section is what a stage declares it reads (``pipeline.artifacts.STAGES``):
changing one reruns only the stages that read it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("default", "smoke")
SET_ENV = "SET"  # space-separated KEY=VALUE overrides, e.g. SET="prune.epochs=3 seed=7"


# The larger CNN's weight layers, input to output, as pipeline/nn/model.py names them; the first four
# are the ones structured pruning narrows. Defined here, standard library only, so the config can
# check layer names before anything loads TensorFlow.
LAYERS = ("conv1", "conv2", "dense1", "dense2", "probabilities")


class ConfigError(ValueError):
    """A config value that cannot work; raised before any stage does work."""


@dataclass(frozen=True)
class DataConfig:
    validation_size: int = 5000  # training images held out for validation (never the test set)
    train_limit: int | None = None  # use only the first N training images (None: all 60 000)
    test_limit: int | None = None  # evaluate on the first N test images (None: all 10 000)
    download_timeout: float = 15.0  # seconds before a network source is given up on


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # training epochs of the baseline; the warm-up and cosine decay make the most of them
    batch_size: int = 128  # images per step
    learning_rate: float = 2e-3  # peak Adam learning rate, reached after the warm-up
    warmup_epochs: float = 1.0  # linear warm-up from 0 to the peak, in epochs
    final_lr_fraction: float = 0.01  # cosine decay ends at this fraction of the peak
    shift_pixels: int = 2  # random translation of each training image, +- pixels (0: off)


@dataclass(frozen=True)
class PruneConfig:
    final_sparsity: float = 0.80  # fraction of all Conv2D/Dense kernel weights that end up zero
    # None: each layer's sparsity is derived from sensitivity.json (pipeline/nn/allocate.py: the split
    # of final_sparsity with the least summed solo validation-accuracy drop, i.e. the weights that
    # cost least per weight go first). Layer names: the override, these stay dense and the others
    # share final_sparsity evenly.
    skip_layers: tuple[str, ...] | None = None
    initial_sparsity: float = 0.30  # overall sparsity at the first pruning step (each layer ramps in proportion)
    epochs: int = 6  # fine-tuning epochs while pruning
    ramp_fraction: float = 0.5  # share of the fine-tuning steps over which sparsity ramps up
    frequency: int = 50  # steps between two pruning updates
    learning_rate: float = 1e-3  # Adam learning rate, cosine-decayed over the fine-tuning


@dataclass(frozen=True)
class StructuredConfig:
    # Filters and units kept (of 30, 15, 128, 50), strongest by L1 norm. None: derived from
    # sensitivity.json (pipeline/nn/allocate.py: one solo-drop threshold shared by all layers, the
    # smallest that meets the budgets below). The default is an override: among fine-tuned
    # candidates that meet the size, arena and speed targets, the one kept on validation (README).
    # conv1 and dense1 are multiples of 16, the channel block of onnxruntime's AVX-512 kernels:
    # narrower but unaligned widths did fewer multiply-adds and ran slower.
    widths: tuple[int, int, int, int] | None = (16, 12, 48, 32)
    max_parameters: int | None = 24000  # budget of derived widths: weights and biases (int8 flash ~ 1 byte each)
    max_macs: int | None = None  # budget of derived widths: multiply-adds per image
    max_activation_bytes: int | None = None  # budget of derived widths: largest int8 activation pair; caps conv1
    # Fine-tuning of the narrower model (it starts far below the baseline, so longer and hotter than
    # pruning's). No sparsity: the int8 file stores zeros, so it would buy gzip size, not flash.
    fine_tune: PruneConfig = field(
        default_factory=lambda: PruneConfig(
            final_sparsity=0.0,
            initial_sparsity=0.0,
            epochs=18,
            learning_rate=2e-3,
            skip_layers=("conv1", "conv2", "probabilities"),
        )
    )


@dataclass(frozen=True)
class SensitivityConfig:
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95)  # kernel sparsities measured per layer, alone
    width_fractions: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # of each layer's baseline width
    calibration_images: int = 500  # training images whose min/max set the int8 output ranges
    batch_size: int = 1000  # images per forward pass


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 2.0  # softens the teacher's (baseline's) outputs; the loss scales by T^2 to match
    # Weight of the teacher's soft targets against the labels' in the structured and QAT fine-tuning
    # (0: labels only). Off by default: it lost accuracy on validation here (README), as a teacher no
    # better than its student can; each sweep point distils with sweep.distill_alpha where that wins.
    alpha: float = 0.0


@dataclass(frozen=True)
class SweepConfig:
    # `make sweep` (not part of `make all`): every width x sparsity below is one point, narrowed from the
    # baseline, fine-tuned (with and without distillation: the better on validation) and measured, as int8
    # too. Widths: conv1-conv2-dense1-dense2.
    widths: tuple[str, ...] = ("16-12-64-32", "12-12-48-32", "12-8-32-24", "8-8-32-16")
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.75)  # of all kernel weights, conv and output layers kept dense
    epochs: int = 4  # fine-tuning epochs per point
    learning_rate: float = 2e-3  # peak Adam learning rate of that fine-tuning
    distill_alpha: float = 0.5  # each k = 0 point is also fine-tuned distilling from the baseline with this weight
    # (distill.temperature), and keeps that model if it is more accurate on validation (0: never distil)
    # k per point: 0 keeps the pruned weights; k > 0 clusters the k = 0 point's model to k values a layer
    # (per conv channel where it is dense; config cluster.learning_rate) for cluster_epochs more epochs.
    clusters: tuple[int, ...] = (0, 16)
    cluster_epochs: int = 2

    @staticmethod
    def unclustered(point: str) -> str:
        """The k = 0 point whose model a clustered point clusters, e.g. "w12-8-32-24_s50_k00"."""
        return point.rsplit("_k", 1)[0] + "_k00"

    def points(self) -> list[str]:
        """The grid's point names, e.g. "w12-8-32-24_s50_k16": one Make target and one file each."""
        return [
            f"w{w}_s{round(s * 100):02d}_k{k:02d}" for w in self.widths for s in self.sparsities for k in self.clusters
        ]


@dataclass(frozen=True)
class QATConfig:
    epochs: int = 1  # quantisation-aware fine-tuning epochs per model: the weights are trained, QAT adapts them
    structured_epochs: int = 2  # structured_qat, structured_cqat: a narrow model needs longer to settle its int8 ranges
    learning_rate: float = 1e-4  # Adam learning rate, cosine-decayed; low, the weights are trained


@dataclass(frozen=True)
class ClusterConfig:
    # k, the distinct weight values kept per layer (per output channel of a clustered Conv2D): 16 is a
    # 4-bit index per weight into a table of 16 values. A layer with fewer weights per channel than
    # k is left as it is (tfmot's rule). Registry entries may set their own.
    clusters: int = 16
    epochs: int = 2  # fine-tuning epochs while clustered: the centroids train, each weight follows its own
    learning_rate: float = 1e-4  # Adam learning rate, cosine-decayed; low, the weights are trained


@dataclass(frozen=True)
class ExportConfig:
    representative_samples: int = 500  # training images used to calibrate int8 PTQ
    onnx_opset: int = 17  # ONNX opset for tf2onnx and onnxruntime.quantization


@dataclass(frozen=True)
class BenchConfig:
    warmup_runs: int = 100  # untimed batch-1 inferences before timing, per artifact
    latency_runs: int = 2000  # timed batch-1 inferences per artifact, in total over the rounds
    rounds: int = 5  # artifacts are measured interleaved in this many rounds
    throughput_batch: int = 256  # batch size of the throughput measurement
    throughput_seconds: float = 0.5  # time spent measuring throughput per artifact


TIER_KEYS = ("host", "haswell", "nehalem", "aarch64", "wasm")  # pipeline.measure.tiers, in the order reported


@dataclass(frozen=True)
class ParityConfig:
    images: int = 1000  # images every ONNX artifact runs on per tier: half from validation, half from test
    tiers: tuple[str, ...] = TIER_KEYS[1:]  # compared with the host (TIER_KEYS); none may be left out silently
    timeout: float = 1800.0  # seconds one tier may take before it is stopped (emulation is 10-100x slower)


CORE_KEYS = ("cortex-m4f", "cortex-m3", "cortex-m7")  # pipeline.measure.cortex_m.CORES


@dataclass(frozen=True)
class FirmwareConfig:
    cores: tuple[str, ...] = ("cortex-m4f", "cortex-m3")  # emulated boards (CORE_KEYS); the first is the reference
    images: int = 1000  # test images each int8 model runs on in QEMU per core (instructions, stack, exactness)
    timeout: float = 900.0  # seconds one QEMU run may take


@dataclass(frozen=True)
class DeployConfig:
    max_accuracy_drop: float = 0.1  # percentage points of validation accuracy a deployable model may lose
    latency_tie: float = 0.05  # p50s within this fraction of the fastest are a tie, broken by gzip size:
    # the same model's p50 moves by a few per cent from run to run, so a closer race is noise
    # Goals the report checks (not enforced), on test-set figures of the deployed model and the MCU pick:
    goal_accuracy_delta_pp: float = -0.1  # test accuracy minus the baseline's, percentage points, at least
    goal_gzip_x: float = 10.0  # gzip size this many times smaller than baseline_fp32.tflite's, at least
    goal_p50_runtime: float = 0.5  # batch-1 p50 over baseline_fp32.onnx's, the runtime's options, at most
    goal_p50_defaults: float = 0.4  # the same under onnxruntime's defaults, at most (CPU-dependent: see the report)
    goal_p50_litert: float = 0.8  # batch-1 p50 over baseline_fp32.tflite's on LiteRT, at most
    goal_mcu_flash_kb: float = 32.0  # the MCU pick's TFLite Micro model bytes, KB (1000 bytes), at most
    goal_mcu_arena_kb: float = 16.0  # its tensor arena, KB, at most
    goal_lib_flash_kb: float = 24.0  # the generated C library's flash (model + kernels), KB, at most
    goal_lib_ram_kb: float = 4.0  # its RAM: static arena plus peak stack of one inference, KB, at most
    goal_instructions_per_mac: float = 2.0  # instructions per multiply-accumulate on the first emulated core
    # The size frontier, whatever the targets pick: the smallest artifacts within max_accuracy_drop on validation.
    goal_download_x: float = 40.0  # the smallest ONNX or TFLite file's gzip, times smaller than baseline_fp32.tflite's
    goal_frontier_lib_flash_kb: float = 12.0  # the smallest generated C library's flash, KB, at most


@dataclass(frozen=True)
class Config:
    profile: str = "default"
    seed: int = 1234  # seeds numpy, Python and TensorFlow; ops are made deterministic
    artifacts: Path = REPO_ROOT / "artifacts"  # where every stage reads and writes
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    structured: StructuredConfig = field(default_factory=StructuredConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    parity: ParityConfig = field(default_factory=ParityConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    overrides: tuple[str, ...] = ()  # the KEY=VALUE overrides applied, as given (recorded, not read)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def _smoke(artifacts: Path) -> Config:
    """Same code, a fraction of the work: a minute or two end to end."""
    return Config(
        profile="smoke",
        artifacts=artifacts,
        data=DataConfig(validation_size=1000, train_limit=20000, test_limit=1000),  # enough for a trained model
        train=TrainConfig(epochs=1, warmup_epochs=0.2),
        prune=PruneConfig(epochs=1, frequency=5),
        structured=StructuredConfig(
            fine_tune=PruneConfig(
                final_sparsity=0.5, epochs=1, frequency=5, skip_layers=("conv1", "conv2", "probabilities")
            )
        ),
        sensitivity=SensitivityConfig(calibration_images=100),
        qat=QATConfig(epochs=1),
        cluster=ClusterConfig(epochs=1),
        sweep=SweepConfig(widths=("12-8-32-24",), sparsities=(0.0, 0.5), epochs=1, clusters=(0, 16), cluster_epochs=1),
        export=ExportConfig(representative_samples=100),
        bench=BenchConfig(warmup_runs=10, latency_runs=100, rounds=2, throughput_seconds=0.2),
    )


def load(profile: str | None = None, artifacts: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The config for ``profile`` (default: $PROFILE or "default") writing to ``artifacts``, with
    ``overrides`` (KEY=VALUE strings; default: those in $SET) applied and validated."""
    profile = profile or os.environ.get("PROFILE") or "default"
    if profile not in PROFILES:
        raise ConfigError(f"PROFILE={profile!r} is unknown; choose one of {', '.join(PROFILES)}")
    where = artifacts or os.environ.get("ARTIFACTS") or default_artifacts(profile)
    where = Path(where)
    where = where if where.is_absolute() else REPO_ROOT / where
    cfg = _smoke(where) if profile == "smoke" else Config(artifacts=where)
    if overrides is None:
        overrides = shlex.split(os.environ.get(SET_ENV, ""))
    return apply(cfg, overrides)


def apply(cfg: Config, overrides: list[str]) -> Config:
    """``cfg`` with each ``section.field=value`` of ``overrides`` set, parsed to the field's type."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE, e.g. prune.final_sparsity=0.9")
        cfg = _set(cfg, key.strip().split("."), raw.strip(), key.strip())
    return dataclasses.replace(cfg, overrides=(*cfg.overrides, *overrides)) if overrides else cfg


def _set(obj: object, path: list[str], raw: str, key: str) -> object:
    names = [f.name for f in dataclasses.fields(obj) if f.name not in ("profile", "artifacts", "overrides")]
    if path[0] not in names:
        where = f"{key.rsplit('.', 1)[0]!r} has" if len(path) < len(key.split(".")) else "sections and keys are"
        raise ConfigError(f"unknown config key {key!r}; {where}: {', '.join(names)}")
    current = getattr(obj, path[0])
    if dataclasses.is_dataclass(current) != (len(path) > 1):
        fields = ", ".join(f"{key}.{f.name}" for f in dataclasses.fields(current)) if len(path) == 1 else ""
        raise ConfigError(
            f"config key {key!r} " + (f"is a section; set one of {fields}" if fields else "is not a section")
        )
    if len(path) > 1:
        value = _set(current, path[1:], raw, key)
    else:
        value = _parse(raw, typing.get_type_hints(type(obj))[path[0]], key)
    return dataclasses.replace(obj, **{path[0]: value})


def _parse(raw: str, kind: object, key: str) -> object:
    """``raw`` as a value of the annotated type ``kind``: int, float, bool, str, X | None, or a tuple."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) and type(None) in args:
        if raw.lower() in ("none", "null"):
            return None
        (kind,) = [a for a in args if a is not type(None)]
        args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple:
        items = [x.strip() for x in raw.split(",") if x.strip()]
        each = args[0]
        if args[-1] is not Ellipsis and len(items) != len(args):
            raise ConfigError(f"config {key}={raw!r}: must be {len(args)} comma-separated values")
        return tuple(_parse(x, each, key) for x in items)
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
        return kind(raw)
    except (KeyError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"config {key}={raw!r}: not a valid {name}") from None


def sections(cfg: Config) -> dict[str, dict]:
    """What a stage can declare it reads: each section's resolved values, and ``seed``."""
    resolved = cfg.to_dict()
    found = {
        f.name: resolved[f.name] for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))
    }
    return {"seed": {"seed": cfg.seed}, **found}


def default_artifacts(profile: str) -> str:
    """Each profile has its own folder, so a smoke run never stands in for a real one."""
    return "artifacts" if profile == "default" else f"artifacts/{profile}"


def _check_sweep(s: SweepConfig, check) -> None:
    for w in s.widths:
        parts = w.split("-")
        ok = len(parts) == 4 and all(p.isdigit() and int(p) >= 1 for p in parts)
        check(ok, "sweep.widths", w, "each must be four positive ints joined by '-', e.g. 12-8-32-24")
    for sparsity in s.sparsities:
        check(0 <= sparsity < 0.9, "sweep.sparsities", sparsity, "each must be in [0, 0.9)")
    check(s.epochs >= 1, "sweep.epochs", s.epochs, "must be >= 1")
    for k in s.clusters:
        check(k == 0 or 2 <= k <= 256, "sweep.clusters", s.clusters, "each must be 0 (none) or in [2, 256]")
    check(s.cluster_epochs >= 1, "sweep.cluster_epochs", s.cluster_epochs, "must be >= 1")
    check(0 <= s.distill_alpha <= 1, "sweep.distill_alpha", s.distill_alpha, "must be in [0, 1]")


def _validate(cfg: Config) -> None:
    def check(ok: bool, name: str, value: object, rule: str) -> None:
        if not ok:
            raise ConfigError(f"config {name}={value!r}: {rule}")

    training = {
        "train": cfg.train,
        "prune": cfg.prune,
        "structured.fine_tune": cfg.structured.fine_tune,
        "qat": cfg.qat,
        "cluster": cfg.cluster,
    }
    check(
        isinstance(cfg.qat.structured_epochs, int) and cfg.qat.structured_epochs >= 1,
        "qat.structured_epochs",
        cfg.qat.structured_epochs,
        "must be an integer >= 1",
    )
    for section, values in training.items():
        epochs = values.epochs
        check(isinstance(epochs, int) and epochs >= 1, f"{section}.epochs", epochs, "must be an integer >= 1")
        check(0 < values.learning_rate < 1, f"{section}.learning_rate", values.learning_rate, "must be in (0, 1)")
    check(2 <= cfg.cluster.clusters <= 256, "cluster.clusters", cfg.cluster.clusters, "must be in [2, 256] (int8)")
    check(cfg.parity.images >= 2, "parity.images", cfg.parity.images, "must be >= 2")
    check(cfg.firmware.images >= 1, "firmware.images", cfg.firmware.images, "must be >= 1")
    for key in cfg.firmware.cores:
        check(key in CORE_KEYS, "firmware.cores", cfg.firmware.cores, f"each must be one of {', '.join(CORE_KEYS)}")
    for key in cfg.parity.tiers:
        check(key in TIER_KEYS[1:], "parity.tiers", cfg.parity.tiers, f"each must be one of {', '.join(TIER_KEYS[1:])}")
    check(cfg.train.batch_size >= 1, "train.batch_size", cfg.train.batch_size, "must be >= 1")
    check(0 <= cfg.train.shift_pixels <= 6, "train.shift_pixels", cfg.train.shift_pixels, "must be in [0, 6]")
    for section, p in (("prune", cfg.prune), ("structured.fine_tune", cfg.structured.fine_tune)):
        check(0 <= p.final_sparsity < 1, f"{section}.final_sparsity", p.final_sparsity, "must be in [0, 1)")
        check(
            0 <= p.initial_sparsity <= p.final_sparsity,
            f"{section}.initial_sparsity",
            p.initial_sparsity,
            f"must be in [0, final_sparsity={p.final_sparsity}]",
        )
        check(0 < p.ramp_fraction <= 1, f"{section}.ramp_fraction", p.ramp_fraction, "must be in (0, 1]")
        check(p.frequency >= 1, f"{section}.frequency", p.frequency, "must be >= 1")
    s = cfg.structured
    ok = s.widths is None or (len(s.widths) == 4 and all(w >= 1 for w in s.widths))
    check(ok, "structured.widths", s.widths, "must be none (derived) or 4 positive ints")
    budgets = (s.max_parameters, s.max_macs, s.max_activation_bytes)
    check(
        s.widths is not None or any(budgets), "structured.widths", s.widths, "none needs a budget (max_parameters...)"
    )
    layers = LAYERS
    for section, p in (("prune", cfg.prune), ("structured.fine_tune", cfg.structured.fine_tune)):
        ok = p.skip_layers is None or set(p.skip_layers) <= set(layers)
        check(ok, f"{section}.skip_layers", p.skip_layers, f"must be none (derived) or among {', '.join(layers)}")
    sens = cfg.sensitivity
    ok = all(0 < x < 1 for x in (*sens.sparsities, *sens.width_fractions))
    check(ok, "sensitivity.sparsities", sens.sparsities, "these and width_fractions must be in (0, 1)")
    d = cfg.data
    check(d.validation_size >= 1, "data.validation_size", d.validation_size, "must be >= 1")
    limit = d.train_limit or 60000
    check(
        d.validation_size < limit <= 60000,
        "data.train_limit",
        d.train_limit,
        f"must leave training images after the {d.validation_size} held out, and be <= 60000",
    )
    check(d.test_limit is None or 1 <= d.test_limit <= 10000, "data.test_limit", d.test_limit, "must be in [1, 10000]")
    check(
        cfg.export.representative_samples >= 1,
        "export.representative_samples",
        cfg.export.representative_samples,
        "must be >= 1",
    )
    b = cfg.bench
    check(b.latency_runs >= b.rounds >= 1, "bench.latency_runs", b.latency_runs, f"must be >= rounds={b.rounds} >= 1")
    _check_sweep(cfg.sweep, check)
    d = cfg.distill
    check(d.temperature > 0, "distill.temperature", d.temperature, "must be > 0")
    check(0 <= d.alpha <= 1, "distill.alpha", d.alpha, "must be in [0, 1]")
    dep = cfg.deploy
    check(dep.max_accuracy_drop >= 0, "deploy.max_accuracy_drop", dep.max_accuracy_drop, "must be >= 0")
    check(0 <= dep.latency_tie < 1, "deploy.latency_tie", dep.latency_tie, "must be in [0, 1)")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.config", description="print the resolved config")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", help="override a field")
    args = parser.parse_args(argv)
    try:
        env = shlex.split(os.environ.get(SET_ENV, ""))
        print(json.dumps(load(overrides=env + (args.set or [])).to_dict(), indent=2))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
