# Two commands from a fresh machine with Python 3.11: `make train` and `make test`.
# Each first installs what is missing: pipenv itself, then the locked environment in .venv/.
# On a Linux machine with an NVIDIA GPU, `make setup-gpu` once first: TensorFlow's CUDA build instead.
PYTHON ?= python3
PIPENV := $(PYTHON) -m pipenv
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1

# Extra arguments: make train ARGS="with half_cheetah seed=3"; make test SUITE=Unit
ARGS ?=
SUITE ?=

.PHONY: setup setup-gpu train test clean-venv

# pipenv itself, when missing: plain pip first (works inside a venv), then --user.
ENSURE_PIPENV = $(PIPENV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install pipenv \
	|| $(PYTHON) -m pip install --user pipenv || $(PYTHON) -m pip install --user --break-system-packages pipenv

# CPU or GPU build of TensorFlow in .venv/. `make setup-gpu` syncs gpu/Pipfile.lock (tensorflow with
# NVIDIA's CUDA/cuDNN wheels) into the same .venv/ and leaves the marker .venv/.gpu instead of
# .venv/.synced. While .venv/.gpu exists, setup (and so train and test) keeps .venv/ in step with
# gpu/Pipfile.lock, never with Pipfile.lock, so tensorflow-cpu is not synced back over the GPU build.
# Switching builds starts .venv/ afresh (tensorflow and tensorflow-cpu install the same files).
# Back to the CPU build: make clean-venv && make setup   (two invocations: the marker is read at start).
ifeq ($(wildcard .venv/.gpu),)
setup: .venv/.synced
else
setup: .venv/.gpu
endif

setup-gpu: .venv/.gpu

.venv/.synced: Pipfile.lock
	@$(ENSURE_PIPENV)
	$(PIPENV) sync --dev
	@sh scripts/check_headless_rendering.sh
	@touch $@

# Pipenv puts an in-project venv beside the Pipfile (here gpu/.venv); WORKON_HOME + PIPENV_CUSTOM_VENV_NAME
# make it create/use ./.venv instead, and PIPENV_IGNORE_VIRTUALENVS keeps an activated venv out of it.
.venv/.gpu: gpu/Pipfile.lock
	@[ -f $@ ] || [ ! -d .venv ] || { echo "removing the CPU build's .venv/ first"; rm -rf .venv; }
	@$(ENSURE_PIPENV)
	PIPENV_PIPFILE=gpu/Pipfile PIPENV_VENV_IN_PROJECT=0 WORKON_HOME="$(CURDIR)" PIPENV_CUSTOM_VENV_NAME=.venv \
		PIPENV_IGNORE_VIRTUALENVS=1 $(PIPENV) sync --dev
	@sh scripts/check_headless_rendering.sh
	@touch $@

train: setup
	$(PIPENV) run python -m sac.train $(ARGS)

test: setup
	$(PIPENV) run python tests.py $(SUITE)

clean-venv:
	rm -rf .venv
