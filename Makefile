# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# The venv is built once; torch is installed first from its pinned CPU wheel so that no
# dependency can pull a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data
GALLERY ?= $(DATA)/flickr8k

.PHONY: demo test lint setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@if [ ! -f "$(GALLERY)/captions.tsv" ]; then \
	  echo "No Flickr8k copy at $(GALLERY). Point the demo at yours:"; \
	  echo "  make demo GALLERY=/path/to/flickr8k   (a folder with images/ and captions.tsv or Flickr8k.token.txt)"; \
	  exit 2; fi
	$(BIN)/crossmodal eval --model default --dataset flickr8k --root $(GALLERY) --split test --json $(VENV)/demo-eval.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
