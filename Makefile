# hpa-scc: the two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv bench clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hpa-scc demo --config configs/demo.yaml

test: $(STAMP)  # both tiers: the fast tests and the ones marked slow
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)  # the fast tier: unit tests on tiny inputs
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/hpa-scc bench all

clean:
	rm -rf data/demo runs/demo reports/demo submissions/demo.csv
