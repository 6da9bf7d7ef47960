# Two entry points for a fresh machine with Python >= 3.11: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all test-plugin lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/labctl run protocols/li-in-alloy-cycle.yaml --simulate --db demo.db

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

# The out-of-tree example plug-in (examples/plugin), installed beside labctl and tested with its own suite.
test-plugin: $(STAMP)
	rm -rf .plugin-site
	$(BIN)/python -m pip install --quiet --no-deps --target .plugin-site examples/plugin
	cd examples/plugin && PYTHONPATH=$(CURDIR)/.plugin-site $(CURDIR)/$(BIN)/python -m pytest tests -q -p no:cacheprovider

test: lint test-plugin
	$(BIN)/python -m pytest -n 2 -q

test-all: lint test-plugin
	LABCTL_SLOW=1 $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .plugin-site
