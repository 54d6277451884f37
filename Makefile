# Quick start:   make all        # virtualenv, data, train, compress, export, benchmark, deploy, report
#                make test       # lint and the whole test suite, smoke pipeline included (what CI runs)
#                make test-fast  # the unit tests only: no smoke pipeline, no network, under a minute
#                make help       # every target, one line each
# Knobs:         SET="prune.final_sparsity=0.9 train.epochs=15"   PROFILE=smoke   ARTIFACTS=dir
#                VENV=dir   PYTHON=python3.11   JOBS=1
#
# The stage rules are not written here: `python -m pipeline.core.deps` derives them from the artifact
# registry (pipeline/artifacts.py) into build/deps.mk before Make reads them, with one stamp file
# per config section (rewritten only when that section's resolved values change). A stage's
# prerequisites are its inputs, its module and the repository modules it imports, and the stamps
# of the config sections it reads: a second `make all` does nothing, and an edit reruns only the
# stages it reaches.

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
ARTIFACTS ?= $(if $(filter default,$(PROFILE)),artifacts,artifacts/$(PROFILE))
SET ?=
PORT ?= 8000
export PROFILE ARTIFACTS SET
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_USE_LEGACY_KERAS := 1

# Independent stages (prune and structured, the QAT models, the exports) run side by side: one
# training process keeps about one core busy. Output is not held back until a stage ends: each
# line carries its [stage] prefix, so lines of parallel stages interleave readably.
# The benchmark depends on every artifact, so nothing runs beside it while it times.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS += --jobs=$(JOBS)

PY := $(VENV)/bin/python
A := $(ARTIFACTS)
INSTALLED := $(VENV)/.installed
BUILD := build
# pipeline.core.deps imports only the standard library, so it runs before the virtualenv exists.
BOOT := $(if $(wildcard $(PY)),$(PY),$(PYTHON))

.PHONY: all help install data train sensitivity prune structured cluster qat export bench benchmark mcu parity firmware deploy images device-kit report sweep web serve \
	test test-fast test-arm lint format clean
.DELETE_ON_ERROR:

# Targets that run no stage need no rules (and a bad SET does not stop them).
NO_STAGES := help install lint format test test-fast test-arm serve clean
# A dry run (make -n) stamps into a scratch copy, so previewing SET=... changes nothing.
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
STAMPS := $(A)/.stamps$(if $(DRY_RUN),-dry-run)
ifneq ($(filter-out $(NO_STAGES),$(or $(MAKECMDGOALS),all)),)
DEPS := $(shell PROFILE=$(PROFILE) ARTIFACTS=$(A) SET='$(SET)' \
	$(BOOT) -m pipeline.core.deps $(BUILD)/deps.mk $(if $(DRY_RUN),--dry-run) 2>&1 >/dev/null; echo "exit=$$?")
ifneq ($(lastword $(DEPS)),exit=0)
$(error $(filter-out exit=%,$(DEPS)))
endif
include $(BUILD)/deps.mk
endif

all: $(A)/report.json $(WEB_OUTPUTS)  ## run every stage that is out of date; print the table, verdict, stage times
	@$(PY) -m pipeline.report --summary

help:  ## list the targets
	@echo "make TARGET [SET=\"section.key=value ...\"] [PROFILE=smoke] [ARTIFACTS=dir] [JOBS=n]"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(INSTALLED)  ## create the virtualenv with the pipeline and dev extras
$(INSTALLED): pyproject.toml
	@echo "[install] creating $(VENV) and installing the project with its pipeline and dev extras"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -qq --disable-pip-version-check -e '.[dev]'
	@touch $@

data: $(DATA_OUTPUTS)  ## fetch and verify MNIST
train: $(TRAIN_OUTPUTS)  ## train the baseline
sensitivity: $(SENSITIVITY_OUTPUTS)  ## per-layer sensitivity of the baseline on validation (evaluation only)
prune: $(PRUNE_OUTPUTS)  ## magnitude-prune a copy of the baseline, per-layer sparsities from the sensitivity
structured: $(STRUCTURED_OUTPUTS)  ## structured pruning: fewer filters and units
cluster: $(CLUSTER_OUTPUTS)  ## weight clustering: k values per layer (per conv channel), fine-tuned
qat: $(QAT_OUTPUTS)  ## quantisation-aware fine-tuning of every QAT model in the registry (CQAT, PCQAT too)
export: $(EXPORT_OUTPUTS)  ## every TFLite and ONNX artifact in the registry
benchmark: $(BENCHMARK_OUTPUTS)  ## measure every artifact, if anything changed
mcu: $(MCU_OUTPUTS)  ## run every int8 model in TFLite Micro: accuracy, flash, arena
parity: $(PARITY_OUTPUTS)  ## every ONNX artifact on emulated AVX2, SSE-only, aarch64 and wasm CPUs: the same digits?
firmware: $(FIRMWARE_OUTPUTS)  ## every int8 model as generated C: bit-exact with TFLite Micro, run on emulated Cortex-M4F and M3
deploy: $(DEPLOY_OUTPUTS)  ## pick the model per target, write model.onnx and the MCU firmware files
web: $(WEB_OUTPUTS)  ## the browser target: a static site in artifacts/web (skipped in one line without npm or clang)
serve: | $(INSTALLED)  ## serve artifacts/web on http://127.0.0.1:8000/ (PORT=...; any static host works too)
	@$(PY) -m pipeline.serve --port $(PORT)
images: $(IMAGES_OUTPUTS)  ## the runtime's image path on user-style images: decode vs to_mnist, accuracy, images/s
device-kit: $(DEVICE_KIT_OUTPUTS)  ## runtime/, the candidate models, 500 test PNGs and a README, to benchmark a device

bench: $(EXPORT_OUTPUTS) | $(INSTALLED)  ## re-measure every artifact, then re-decide and re-render
	$(PY) -m pipeline.benchmark
	@$(MAKE) --no-print-directory $(A)/report.json
	@$(PY) -m pipeline.report --summary

report: | $(INSTALLED)  ## re-render the report from the saved measurements; DEVICES="pi5.json ..." adds devices
	$(PY) -m pipeline.report $(if $(DEVICES),--devices $(DEVICES))
	@$(PY) -m pipeline.report --summary

sweep: $(SWEEP_POINTS) | $(INSTALLED)  ## widths x sparsities x clusters (config `sweep`), each point a target: make -j4 sweep
	$(PY) -m pipeline.sweep --collect
	$(PY) -m pipeline.report

test: lint  ## lint and the whole test suite, emulated ARM included (what CI runs)
	$(PY) -m pytest

test-fast: $(INSTALLED)  ## the unit tests: no smoke pipeline, no network, no emulation
	$(PY) -m pytest -m "not slow and not network and not arm and not emulated"

test-arm: $(INSTALLED)  ## the device kit on emulated 64-bit ARM (qemu-user-static); builds build/arm/ once
	$(PY) -m pytest -m arm

lint: $(INSTALLED)  ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)  ## ruff fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## remove generated artifacts (keeps the MNIST cache and the virtualenv)
	find artifacts -mindepth 1 -not -path 'artifacts/data*' -not -name README.md -delete
	rm -rf $(BUILD)
