# The README's commands. Each creates the virtual environment on first use.
VENV    ?= .venv
CORES   ?= $(shell nproc)
BIN     := $(VENV)/bin
PYTHON  ?= python3

# one BLAS/OpenMP thread per process: jobs run side by side instead
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1

.PHONY: demo test lint status clean-demo

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: this takes the CPU wheel instead of a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,slurm]'
	touch $@

# the DFT codes of the tests (GPAW, Quantum ESPRESSO); Debian packages need root
$(BIN)/.dft: $(BIN)/.installed tests/dft/install.sh tests/dft/gpaw-siteconfig.py
	bash tests/dft/install.sh $(BIN)/pip
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/almomd status
	@echo "results: $(CURDIR)/results   status: $(BIN)/almomd status [--json]"

test: $(BIN)/.installed $(BIN)/.dft
	$(BIN)/pytest -ra

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests workflow/scripts benchmarks
	$(BIN)/ruff format --check src tests workflow/scripts benchmarks
	$(BIN)/snakefmt --check workflow/
	$(BIN)/snakemake --lint --cores 1

status: $(BIN)/.installed
	$(BIN)/almomd status

clean-demo:
	rm -rf results logs benchmarks/iter_* benchmarks/initial benchmarks/heldout .snakemake
