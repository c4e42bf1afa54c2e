# csakd_qgis — one-command set-up, tests, demo, plugin packaging. See README.md.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
QGIS_PROCESS := $(ROOT)/scripts/qgis_process.sh
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
PLUGIN_ZIP := dist/csakd_qgis-$(VERSION).zip
# Where `make install` puts the plugin: the default QGIS profile of the current user.
QGIS_PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PYTEST_ARGS ?=

.PHONY: setup test demo plugin install bench lint clean processing-models
.DEFAULT_GOAL := test

setup: $(VENV)/.csakd-setup-done

$(VENV)/.csakd-setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py --out demo_out

plugin: $(PLUGIN_ZIP)

$(PLUGIN_ZIP): $(shell find csakd_qgis models -type f -not -path '*/__pycache__/*' 2>/dev/null) metadata.txt LICENSE setup
	$(PY) scripts/build_plugin.py --out $(PLUGIN_ZIP)

install: plugin
	mkdir -p "$(QGIS_PROFILE_DIR)/python/plugins"
	rm -rf "$(QGIS_PROFILE_DIR)/python/plugins/csakd_qgis"
	cd "$(QGIS_PROFILE_DIR)/python/plugins" && $(PY) -m zipfile -e "$(ROOT)/$(PLUGIN_ZIP)" .
	@echo "installed into $(QGIS_PROFILE_DIR)/python/plugins/csakd_qgis (enable it in Plugins > Manage)"

processing-models: setup  ## regenerate processing/*.model3 after changing an algorithm's parameters
	QT_QPA_PLATFORM=offscreen $(PY) scripts/make_models.py

bench: setup
	$(PY) bench/run_all.py --out bench/results

lint: setup
	$(PY) -m ruff check csakd_qgis tests scripts bench

clean:
	rm -rf build dist demo_out .qgis_profile .pytest_cache .ruff_cache test-artifacts bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
