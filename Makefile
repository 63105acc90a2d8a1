# tipring: two commands set everything up on a fresh Debian / Raspberry Pi OS machine.
#   make demo   create .venv, install tipring, run `tipring demo` and print its report
#   make test   the same set-up plus the test extras, then the whole test suite
#   make test-pi   (root) the Pi installer and tests/dsp + one call on an emulated arm64 Pi
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the tests need: headers to build `pesq`, and the reference DSP libraries
# (spandsp, speexdsp) that benchmarks and comparison tests bind with ctypes; shellcheck and
# systemd (systemd-analyze) check deploy_pi's scripts and unit (tests/deploy_pi).
TEST_DEBS := python3-dev libspandsp2 libspeexdsp1 shellcheck systemd openssl

.PHONY: demo test test-dsp test-dsp-boundscheck test-deploy test-pi system-deps clean

demo: $(VENV)/.installed
	$(BIN)/tipring demo

# tests/dsp (kernels against their references: CPU-bound, no clock) and the same kernels
# with bounds checking side by side, one core each (each process compiles its kernels once);
# then the rest (whole calls on the real clock: simulated lines, a local realtime server) on
# an otherwise idle machine, so that no call's audio is late because of the tests.
test: system-deps $(VENV)/.installed-test
	$(MAKE) --no-print-directory -j2 --output-sync=target test-dsp test-dsp-boundscheck
	$(BIN)/python -m pytest -q --ignore=tests/dsp

test-dsp: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/dsp

# The DSP kernels again with numba bounds checking, in a cache of their own so the checked
# builds never mix with the fast ones. The false-trigger sweeps (`-m sweep`: the same code
# paths over long stretches of speech and music) run in the unchecked pass only.
test-dsp-boundscheck: $(VENV)/.installed-test
	NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(CURDIR)/$(VENV)/numba-boundscheck \
		$(BIN)/python -m pytest -q -p no:cacheprovider -m "not sweep" tests/dsp

# deploy_pi's own tests alone (they also run in `make test`).
test-deploy: system-deps $(VENV)/.installed-test
	$(BIN)/python -m pytest -q tests/deploy_pi

# Separate from `make test`: needs root, binfmt_misc, the Debian archive and PyPI, ~1.5 GB and
# minutes (the arm64 root is cached in build/test-pi). deploy_pi/README.md says more.
test-pi:
	deploy_pi/test-pi.sh

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "tipring needs Python >= 3.11 ($(PYTHON) is older)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		rm -rf $(VENV); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
		else echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# Installs the Debian packages the tests need when running as root (CI); otherwise says which.
system-deps:
	@missing=""; for p in $(TEST_DEBS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq $$missing; \
		else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
