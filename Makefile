# Quick start:   make all     # virtualenv, data, train, prune, qat, export, benchmark, report
#                make test    # lint and the test suite (what CI runs)
# Knobs:         PROFILE=smoke (tiny, ~1 min)   ARTIFACTS=dir   VENV=dir   PYTHON=python3.11   JOBS=1
# Every stage's output is a file target; its module, inputs and the config are its
# prerequisites, so a second `make all` does nothing and an edit reruns what it affects.

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
ARTIFACTS ?= $(if $(filter default,$(PROFILE)),artifacts,artifacts/$(PROFILE))
export PROFILE ARTIFACTS
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_USE_LEGACY_KERAS := 1

# Independent stages (prune and structured, the three QAT models) run side by side: one
# training process keeps about one core busy. Each output line carries its [stage] prefix.
# The benchmark depends on every export, so nothing runs beside it while it times.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS += --jobs=$(JOBS) --output-sync=line

PY := $(VENV)/bin/python
A := $(ARTIFACTS)
INSTALLED := $(VENV)/.installed
CONFIG := pipeline/__init__.py pipeline/config.py pipeline/stage.py
TRAINING := $(CONFIG) pipeline/data.py pipeline/model.py runtime/preprocess.py runtime/ink.py
ONNX_RUNTIME := runtime/metadata.py runtime/preprocess.py runtime/ink.py runtime/classifier.py

.PHONY: all install data train prune structured qat export bench report test lint format clean
.DELETE_ON_ERROR:

all: $(A)/report.json
	@$(PY) -m pipeline.report --summary

install: $(INSTALLED)
$(INSTALLED): pyproject.toml
	@echo "[install] creating $(VENV) and installing the project with its pipeline and dev extras"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

data: $(A)/data/mnist.npz
$(A)/data/mnist.npz: pipeline/data.py $(CONFIG) | $(INSTALLED)
	$(PY) -m pipeline.data

train: $(A)/baseline.keras
$(A)/baseline.keras: pipeline/train.py $(A)/data/mnist.npz $(TRAINING) | $(INSTALLED)
	$(PY) -m pipeline.train

prune: $(A)/pruned.keras
$(A)/pruned.keras: pipeline/prune.py $(A)/baseline.keras $(TRAINING) | $(INSTALLED)
	$(PY) -m pipeline.prune

structured: $(A)/structured.keras
$(A)/structured.keras: pipeline/structured.py pipeline/prune.py $(A)/baseline.keras $(TRAINING) | $(INSTALLED)
	$(PY) -m pipeline.structured

QAT := $(A)/pruned_qat.keras $(A)/qat.keras $(A)/structured_qat.keras
qat: $(QAT)
$(A)/pruned_qat.keras: $(A)/pruned.keras
$(A)/qat.keras: $(A)/baseline.keras
$(A)/structured_qat.keras: $(A)/structured.keras
$(QAT): $(A)/%.keras: pipeline/qat.py $(TRAINING) | $(INSTALLED)
	$(PY) -m pipeline.qat $*

export: $(A)/export.json
$(A)/export.json: pipeline/export.py pipeline/graph.py pipeline/runners.py $(A)/baseline.keras $(A)/pruned.keras \
		$(A)/structured.keras $(QAT) $(TRAINING) runtime/metadata.py | $(INSTALLED)
	$(PY) -m pipeline.export

$(A)/benchmark.json: pipeline/benchmark.py pipeline/runners.py pipeline/model.py $(A)/export.json $(CONFIG) $(ONNX_RUNTIME) | $(INSTALLED)
	$(PY) -m pipeline.benchmark

$(A)/report.json: pipeline/report.py pipeline/report_text.py pipeline/plots.py $(A)/benchmark.json $(A)/data/mnist.npz \
		$(CONFIG) runtime/metadata.py | $(INSTALLED)
	$(PY) -m pipeline.report

bench: $(A)/export.json | $(INSTALLED)  ## re-measure every artifact, then re-render the report
	$(PY) -m pipeline.benchmark
	$(PY) -m pipeline.report
	@$(PY) -m pipeline.report --summary

report: | $(INSTALLED)  ## re-render the report from the saved measurements
	$(PY) -m pipeline.report
	@$(PY) -m pipeline.report --summary

test: lint
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## remove generated artifacts (keeps the MNIST cache and the virtualenv)
	find artifacts -mindepth 1 -not -path 'artifacts/data*' -not -name README.md -delete
