# nitrometer: `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NATIVE := $(wildcard native/*.h native/*.c native/reader/*.h native/reader/*.c) native/build.py
LISTEN ?= :9720

.DEFAULT_GOAL := help
.PHONY: help venv sysdeps run test test-matrix unit wheels sanitize portability bench lint goldens dashboards \
	install clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Each stamp is one set of extras: `make run` installs the package alone (what the agent and
# its simulated devices need); the tests and the wheels' cross-compiler come on top when asked.
$(VENV)/.installed-run: pyproject.toml setup.py $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-%: $(VENV)/.installed-run
	$(PY) -m pip install -q -e '.[$*]'
	touch $@

venv: $(VENV)/.installed-test $(VENV)/.installed-wheels ## create .venv with the tests' and wheels' packages, build the C core

sysdeps: ## install the system packages the tests use (Prometheus, node_exporter, Chromium, ...)
	@./tests/tools/install-system-deps

run: $(VENV)/.installed-run ## run the agent from a .venv with only what it needs (simulated devices off EC2)
	$(VENV)/bin/nitrometer run --demo --web.listen-address=$(LISTEN)

unit: venv ## the test suite only, without system packages
	$(PY) -m pytest -q

# The wheels are built once per run; the packaging tests install them (NITROMETER_WHEELS)
# with their dependencies fetched beforehand, so no test asks a package index.
test: venv sysdeps wheels ## lint, then the whole suite on CPython 3.9 and 3.13, sanitizer, aarch64
	$(MAKE) --no-print-directory lint
	./tests/tools/fetch-wheel-deps
	NITROMETER_WHEELS=dist $(VENV)/bin/nox -s tests-3.9 tests-3.13
	$(MAKE) --no-print-directory sanitize portability

test-matrix: venv sysdeps wheels ## the whole suite on CPython 3.9, 3.10, 3.11, 3.12 and 3.13
	./tests/tools/fetch-wheel-deps
	NITROMETER_WHEELS=dist $(VENV)/bin/nox -s tests

wheels: $(VENV)/.installed-wheels ## wheels for x86_64 and aarch64 Linux (manylinux2014) into dist/: no compiler to install
	./tests/tools/build-wheels

SANITIZED_READER := tests/tools/build/sanitize/nitrometer-reader
SANITIZE_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
sanitize: $(VENV)/.installed-test ## drive the C core built with ASan+UBSan over 300,000 mutated pages, and the privileged reader over its protocol tests
	./tests/tools/run-sanitized
	CC=gcc $(PY) native/build.py --reader $(SANITIZED_READER) $(SANITIZE_FLAGS) -Werror
	@# the fake device's shim (LD_PRELOAD) loads before ASan's runtime, harmlessly
	NITROMETER_TEST_READER=$(SANITIZED_READER) \
		ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(PY) -m pytest -q -p no:cacheprovider tests/agent/test_reader_protocol.py

portability: $(VENV)/.installed-test ## build the C core for aarch64 (Graviton), require x86_64's results under qemu
	./tests/tools/run-portability

bench: venv sysdeps ## run the benchmarks and rewrite BENCHMARKS.md
	$(PY) -m benchmarks

lint: $(VENV)/.installed-test ## ruff, and the import contract of the layers (pyproject.toml)
	$(VENV)/bin/ruff check nitrometer devkit tests benchmarks native noxfile.py setup.py
	$(VENV)/bin/lint-imports --no-cache

goldens: $(VENV)/.installed-test ## rewrite the golden files after a reviewed change (the run fails by design)
	-NITROMETER_REGEN_GOLDEN=1 $(PY) -m pytest -q tests/agent/test_exposition.py \
		tests/cli/test_view.py
	$(MAKE) --no-print-directory dashboards
	@git status --short tests deploy/grafana

dashboards: $(VENV)/.installed-run ## regenerate the dashboards and rules kept in deploy/grafana
	$(VENV)/bin/nitrometer dashboards --out deploy/grafana

install: wheels ## install the wheel, the systemd unit (as root) and start the agent
	./deploy/install.sh

clean: ## remove the venv and build output
	rm -rf $(VENV) build *.egg-info nitrometer/_nmcore.abi3.so nitrometer/libnmcore.so nitrometer/_ffi.py nitrometer/nitrometer-reader dist .nox native/*.o .pytest_cache .hypothesis
