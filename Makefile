# Two commands on a fresh clone (Python 3.11 and make):
#   make lab    set everything up, open the notebooks in JupyterLab
#   make test   set everything up, run the whole test suite (what CI runs)
# and one more:
#   make demo   execute every notebook headless at demo scale (CPU minutes each), storing the outputs
#               (07, the GPU notebook, at smoke scale)
#               (make demo NB=02 runs only notebooks/02_*.ipynb)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# Use a local copy of the datasets when one sits beside the checkout (CI and this project's machines);
# otherwise awdlib downloads them, checksummed, into ~/.cache/awdlib.
ifneq ($(wildcard ../shared/data/ptb),)
export AWDLIB_DATA ?= $(abspath ../shared/data)
endif

# Back large CPU tensors with 2 MB pages (PyTorch's switch; read at torch's first allocation, so it
# must be in the environment before Python starts). Most of a CPU training step's memory is fresh each
# step, and 4 KB pages fault in one by one: with 2 MB pages a demo-scale epoch ran 13% faster here with
# the same perplexities to the last digit (benchmarks/README.md). Kernels started by `make lab` inherit it.
export THP_MEM_ALLOC_ENABLE ?= 1

NB ?=
NOTEBOOKS := $(sort $(wildcard notebooks/$(NB)*.ipynb))

.PHONY: setup lab test demo smoke clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: any other release pulls several GB of CUDA libraries.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[notebook,test]"
	rm -f $(VENV)/.installed-*
	touch $@

# --allow-root only where make runs as root (containers); JupyterLab refuses root otherwise.
lab: setup
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# Unit tests, every notebook run by papermill at smoke scale, and the real-browser test; then nbval
# re-runs the stored notebooks as a learner's "Run All" does and compares their outputs: 00-06, 08 and 09 at
# their default (demo) scale, which loads the shipped weights, and 07 at the smoke scale its stored
# outputs come from. One torch thread, as the stored outputs were made.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval-sanitize.cfg --nbval-cell-timeout 120
GPU_NOTEBOOK := notebooks/07_full_scale_gpu.ipynb
test: setup
	AWDLIB_SCALE=smoke AWDLIB_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests $(GPU_NOTEBOOK) $(NBVAL)
	AWDLIB_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(NBVAL) \
	  $(filter-out $(GPU_NOTEBOOK),$(wildcard notebooks/[0-9][0-9]_*.ipynb))

# Notebook 07 runs the full recipe on a GPU; without one its stored outputs come from the smoke scale
# (the notebook says so in a banner). notebooks/execute.py is papermill (in place, from notebooks/) with
# a kernel client that cannot lose a cell's reply under load (it says why).
demo: setup
	@for nb in $(NOTEBOOKS); do \
	  case $$nb in *07_full_scale_gpu*) scale=smoke;; *) scale=demo;; esac; \
	  echo "== $$nb ($$scale scale)"; \
	  $(BIN)/jupytext --sync $${nb%.ipynb}.py >/dev/null && \
	  AWDLIB_SCALE=$$scale $(BIN)/python notebooks/execute.py $$nb --timeout 1800 \
	    || exit 1; \
	done

clean:
	rm -rf $(VENV) notebooks/results/checkpoints notebooks/results/*-smoke.json \
	  notebooks/results/*-smoke.runs.jsonl
