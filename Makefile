# Developer entry points.  `make demo` and `make test` each set up what they
# need on a fresh machine: the virtualenv in .venv is created (or updated)
# by the `venv` target they depend on.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched once the editable install succeeded; re-done when metadata changes.
STAMP  := $(VENV)/.appendonly-installed
VAR    := var

.PHONY: venv demo test test-versions stress docs bench clean distclean

# The tests of path sharing, which relies on ZEO/ZODB internals
# (appendonly/share/_zeo.py), run again with the lowest and the highest
# ZEO/ZODB setup.cfg allows (tox envs of the same names).
SHARING_TESTS := appendonly/tests/test_share_internals.py \
	appendonly/tests/test_oids.py appendonly/tests/test_db.py \
	appendonly/tests/test_interop.py

venv: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

demo: venv
	mkdir -p $(VAR)
	$(BIN)/python -m appendonly.demo --dir $(VAR)

test: venv
	$(BIN)/python -m pytest -q README.rst appendonly docs
	$(BIN)/sphinx-build -W -q -b html docs docs/_build/html

test-versions: venv
	$(BIN)/python -m pip install --quiet tox
	$(BIN)/tox -q -e lowest,highest -- -q -p no:cacheprovider $(SHARING_TESTS)

# 300 SIGKILLs of the process serving a shared path, and 75 of a runzeo,
# under load; `make test` runs the same with 30 and 7.
stress: venv
	APPENDONLY_STRESS_KILLS=300 $(BIN)/python -m pytest -q -s \
	    -p no:cacheprovider appendonly/tests/test_takeover.py

docs: venv
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

bench: venv
	mkdir -p $(VAR)
	# The peers measured against (never dependencies of appendonly).
	$(BIN)/python -m pip install --quiet persist-queue sqlitedict diskcache matplotlib
	$(BIN)/python benchmarks/bench_append.py --json $(VAR)/append.json
	$(BIN)/python benchmarks/plot_append.py $(VAR)/append.json
	$(BIN)/python benchmarks/bench_facades.py --json $(VAR)/facades.json
	$(BIN)/python benchmarks/plot_facades.py $(VAR)/facades.json
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_sharing.py --json $(VAR)/sharing.json
	$(BIN)/python benchmarks/bench_pyramid.py --json $(VAR)/pyramid.json

clean:
	rm -rf build dist *.egg-info docs/_build .pytest_cache .hypothesis $(VAR)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tox bin parts eggs develop-eggs .installed.cfg
