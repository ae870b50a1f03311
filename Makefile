# peft-bench. `make install` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PEFT_BENCH := $(VENV)/bin/peft-bench
DATA_DIR ?= ../shared/data
MODEL_DIR ?=
GRID_ARGS ?=

.PHONY: install test smoke glue-roberta-base glue-roberta-large glue-roberta-large-restricted nlg-gpt2-medium \
        nlg-gpt2-large minilm-glue perf clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to a CPU-capable release: a bare `pip install torch` would pull a multi-GB CUDA build.
# On a GPU machine install the torch build for your CUDA first; the range in pyproject.toml then keeps it.
install: $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch>=2.4,<2.15" --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -q -e ".[test,minilm]"

# pytest exits 5 when it collects no tests: that is a failure here, said in words.
test:
	@$(PY) -m pytest -q -n 2 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

smoke:
	$(PEFT_BENCH) grid smoke
	$(PEFT_BENCH) collect smoke
	$(PEFT_BENCH) report smoke

# One torch thread: on 2 shared cores two threads ran 5x slower (docs/runner.md).
minilm-glue:
	OMP_NUM_THREADS=1 $(PEFT_BENCH) grid minilm-glue --data-dir $(DATA_DIR) $(GRID_ARGS)
	$(PEFT_BENCH) collect minilm-glue
	$(PEFT_BENCH) report minilm-glue

glue-roberta-base glue-roberta-large glue-roberta-large-restricted nlg-gpt2-medium nlg-gpt2-large:
	$(PEFT_BENCH) grid $@ $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(MODEL_DIR),--model-dir $(MODEL_DIR)) $(GRID_ARGS)
	$(PEFT_BENCH) collect $@
	$(PEFT_BENCH) report $@

perf:
	$(PEFT_BENCH) perf $(if $(DATA_DIR),--data-dir $(DATA_DIR)) --out reports/perf/perf.json

clean:
	rm -rf .pytest_cache build *.egg-info
