# nitrometer: `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NATIVE := native/nitrometer_native.h native/logpage.c native/nvme_ioctl.c native/build.py
LISTEN ?= :9720

.DEFAULT_GOAL := help
.PHONY: help venv sysdeps run test unit sanitize bench lint dashboards install clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml setup.py $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed ## create .venv, install the package and build the C extension

sysdeps: ## install the system packages the tests use (Prometheus, promtool, Chromium)
	@./tests/tools/install-system-deps

run: venv ## run the agent (simulated devices where there is no EC2 NVMe hardware)
	$(VENV)/bin/nitrometer run --demo --web.listen-address=$(LISTEN)

unit: venv ## the test suite only, without system packages
	$(PY) -m pytest -q

test: venv sysdeps ## set up and run the whole test suite, then the sanitizer build
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory sanitize

sanitize: venv ## build the C core with ASan+UBSan and run the native tests under it
	./tests/tools/run-sanitized

bench: venv sysdeps ## run the benchmarks and rewrite BENCHMARKS.md
	$(PY) -m benchmarks

lint: venv ## ruff over the package, tests and benchmarks
	$(VENV)/bin/ruff check nitrometer tests benchmarks native

dashboards: venv ## regenerate the dashboards and rules kept in deploy/grafana
	$(VENV)/bin/nitrometer dashboards --out deploy/grafana

install: venv ## install the systemd unit (as root) and start the agent
	./deploy/install.sh

clean: ## remove the venv and build output
	rm -rf $(VENV) build *.egg-info nitrometer/_native*.so native/*.o .pytest_cache .hypothesis
