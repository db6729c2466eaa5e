# nitrometer: `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NATIVE := $(wildcard native/*.h native/*.c) native/build.py
LISTEN ?= :9720

.DEFAULT_GOAL := help
.PHONY: help venv sysdeps run test unit sanitize portability bench lint dashboards install clean

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

test: venv sysdeps ## set up and run the whole test suite, the sanitizer and aarch64 builds
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory sanitize portability

sanitize: venv ## drive the C core built with ASan+UBSan over 300,000 mutated pages
	./tests/tools/run-sanitized

portability: venv ## build the C core for aarch64 (Graviton), require x86_64's results under qemu
	./tests/tools/run-portability

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
