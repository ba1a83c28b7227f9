# Two commands from a fresh machine with Python 3.11: `make train` and `make test`.
# Each first installs what is missing: pipenv itself, then the locked environment in .venv/.
PYTHON ?= python3
PIPENV := $(PYTHON) -m pipenv
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1

# Extra arguments: make train ARGS="with half_cheetah seed=3"; make test SUITE=Unit
ARGS ?=
SUITE ?=

.PHONY: setup train test clean-venv

setup: .venv/.synced

.venv/.synced: Pipfile.lock
	@$(PIPENV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install pipenv \
		|| $(PYTHON) -m pip install --user pipenv \
		|| $(PYTHON) -m pip install --user --break-system-packages pipenv
	$(PIPENV) sync --dev
	@sh scripts/check_headless_rendering.sh
	@touch $@

train: setup
	$(PIPENV) run python -m sac.train $(ARGS)

test: setup
	$(PIPENV) run python tests.py $(SUITE)

clean-venv:
	rm -rf .venv
