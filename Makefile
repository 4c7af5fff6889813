# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# The venv is built once; torch is installed first from its pinned CPU wheel so that no
# dependency can pull a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data
GALLERY ?= $(DATA)/flickr8k

.PHONY: demo test test-fp32 lint lock setup clean-venv browser

setup: $(STAMP)

# Every package version is pinned by requirements.lock (what the tests last passed with), so
# two set-ups a week apart install the same thing; `make lock` refreshes it (see README).
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK)
	@echo "[1/5] creating the virtual environment $(VENV)"
	@# a venv whose creation was interrupted (python there, pip not yet) is made again
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	@echo "[2/5] upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[3/5] installing torch 2.13.0 (CPU build, ~200 MB) first, so no dependency pulls a CUDA build"
	@$(BIN)/python -m pip install --quiet -c $(LOCK) torch==2.13.0
	@echo "[4/5] installing crossmodal and its dependencies at the versions of $(LOCK) (a few minutes)"
	@$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@echo "[5/5] checking the installed versions against $(LOCK)"
	@$(BIN)/python tools/check_lock.py $(LOCK)
	@touch $(STAMP)
	@echo "set-up done: activate it with '. $(VENV)/bin/activate', then 'crossmodal --help'"

# Refresh the lock: a throw-away venv gets the newest versions pyproject.toml allows, then the
# whole suite should be run against them (`make clean-venv test`) before committing the lock.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet torch==2.13.0
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python tools/check_lock.py --write $(LOCK)
	rm -rf .venv-lock

# The demo indexes the 1,000 Flickr8k test images with their captions into an ignored folder
# (incremental: a second `make demo` only searches; --rebuild re-embeds it when the default
# model has been retrained since), then searches once in each direction.
# With GALLERY pointing at a folder of your own photos it indexes that folder instead.
DEMO_COLLECTION ?= $(VENV)/demo-collection
DEMO_MODEL ?= default
DEMO_CLI = $(BIN)/crossmodal
DEMO_TEXT ?= a dog running through the grass
DEMO_CAPTION_QUERY ?= two children playing in the water
DEMO_PORT ?= 8000
DEMO_SERVE ?= 1

demo: $(STAMP)
	@if [ ! -d "$(GALLERY)" ]; then \
	  echo "No photos at $(GALLERY). Point the demo at a folder of your own photos:"; \
	  echo "  make demo GALLERY=~/Pictures"; \
	  echo "(or at a Flickr8k copy: a folder with images/, captions.tsv and test.txt)"; \
	  exit 2; fi
	@set -e; captioned=0; \
	if [ -f "$(GALLERY)/captions.tsv" ] && [ -f "$(GALLERY)/test.txt" ]; then \
	  captioned=1; \
	  echo "== indexing the Flickr8k test split (1,000 images, 5 captions each) into $(DEMO_COLLECTION)"; \
	  $(DEMO_CLI) index "$(GALLERY)/images" --only "$(GALLERY)/test.txt" \
	    --captions "$(GALLERY)/captions.tsv" --collection "$(DEMO_COLLECTION)" --model "$(DEMO_MODEL)" --rebuild; \
	else \
	  echo "== indexing your photos in $(GALLERY) into $(DEMO_COLLECTION)"; \
	  $(DEMO_CLI) index "$(GALLERY)" --collection "$(DEMO_COLLECTION)" --model "$(DEMO_MODEL)" --rebuild; \
	fi; \
	echo; echo "== text -> images: \"$(DEMO_TEXT)\""; \
	$(DEMO_CLI) search "$(DEMO_TEXT)" -k 5 --collection "$(DEMO_COLLECTION)"; \
	query_image="$$($(DEMO_CLI) search "$(DEMO_TEXT)" -k 1 --paths-only --collection "$(DEMO_COLLECTION)")"; \
	echo; echo "== image -> images (the best hit above): $$query_image"; \
	$(DEMO_CLI) search "$$query_image" -k 5 --collection "$(DEMO_COLLECTION)"; \
	if [ $$captioned = 1 ]; then \
	  echo; echo "== image -> captions: $$query_image"; \
	  $(DEMO_CLI) search "$$query_image" --mode i2t -k 5 --collection "$(DEMO_COLLECTION)"; \
	  echo; echo "== text -> captions: \"$(DEMO_CAPTION_QUERY)\""; \
	  $(DEMO_CLI) search "$(DEMO_CAPTION_QUERY)" --mode t2t -k 5 --collection "$(DEMO_COLLECTION)"; \
	else echo; echo "== (no captions indexed: the image -> captions and text -> captions searches are skipped)"; fi; \
	echo; echo "== query arithmetic: \"$(DEMO_TEXT)\" + the image above - \"grass\""; \
	$(DEMO_CLI) search "$(DEMO_TEXT)" + "$$query_image" - grass -k 5 --collection "$(DEMO_COLLECTION)"; \
	echo; echo "== done. The collection is in $(DEMO_COLLECTION)"; \
	echo "   search it:  $(DEMO_CLI) search \"a red car\" --collection $(DEMO_COLLECTION)"; \
	echo "   web app:    $(DEMO_CLI) serve --collection $(DEMO_COLLECTION), then open http://127.0.0.1:$(DEMO_PORT)"
# last: serve the collection in a browser until Ctrl-C (DEMO_SERVE=0 skips it)
	@if [ "$(DEMO_SERVE)" != 0 ]; then \
	  echo; echo "== starting the web app: open http://127.0.0.1:$(DEMO_PORT) in a browser (Ctrl-C stops it)"; \
	  echo "   search four ways, drop a photo, ask the dog chat"; \
	  exec $(DEMO_CLI) serve --collection "$(DEMO_COLLECTION)" --port $(DEMO_PORT); fi

test: $(STAMP) browser
	$(BIN)/python tools/check_lock.py $(LOCK)
	$(BIN)/python -m pytest -q

# The numeric-path tests (towers, fast paths, eval figures on the fixture) on the fp32 path,
# whatever this CPU would pick: CI runs them after `make test`, so both paths are covered on
# any machine (the bf16 path itself is forced by its own tests, emulated where not native).
NUMERIC_TESTS := tests/index/test_fast.py tests/models tests/test_cli_eval.py tests/eval \
	tests/test_collection.py tests/index/test_store.py
test-fp32: $(STAMP)
	CROSSMODAL_FAST=fp32 $(BIN)/python -m pytest -q $(NUMERIC_TESTS)

# The browser tests (tests/web) drive Debian's chromium; a new machine has only what the
# project installs, so install it when it is missing and we can (root with apt-get). Elsewhere
# those tests skip with a message. Never `playwright install`: it downloads its own build.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "== installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    >/dev/null) || echo "could not install chromium: the browser tests will skip"; \
	else echo "no chromium (and not root with apt-get): the browser tests will skip"; fi

# ruff, then mypy over src/ (its settings, strict for models/index/collection, are in
# pyproject.toml's [tool.mypy]; its cache is .mypy_cache, ignored by git)
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean-venv:
	rm -rf $(VENV)
