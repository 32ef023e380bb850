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

# the demo campaign runs in its own directory, made by `almomd init` like any campaign
DEMO ?= demo

demo: $(BIN)/.installed
	test -f $(DEMO)/Snakefile || $(BIN)/almomd init $(DEMO)
	cd $(DEMO) && $(CURDIR)/$(BIN)/snakemake --cores $(CORES)
	$(BIN)/almomd status -d $(DEMO)
	@echo "results: $(CURDIR)/$(DEMO)/results   status: $(BIN)/almomd status -d $(DEMO) [--json]"

test: $(BIN)/.installed $(BIN)/.dft
	$(BIN)/pytest -ra

# snakemake --lint checks the installed workflow through a fresh campaign directory
lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check src/almomd/workflow
	rm -rf build/lint-campaign && $(BIN)/almomd init build/lint-campaign > /dev/null
	$(BIN)/snakefmt --check build/lint-campaign/Snakefile
	cd build/lint-campaign && $(CURDIR)/$(BIN)/snakemake --lint --cores 1

status: $(BIN)/.installed
	$(BIN)/almomd status -d $(DEMO)

clean-demo:
	rm -rf $(DEMO)
