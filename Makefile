# The README's commands. Each creates the virtual environment on first use.
VENV    ?= .venv
# every core: nproc counts OMP_NUM_THREADS, which is 1 here (and often in users' shells)
CORES   ?= $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
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

# the clone is a campaign: the demo (config/config.yaml) runs here, results in results/
demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/almomd status
	@echo "results: $(CURDIR)/results   status: $(BIN)/almomd status [--json]"

# three pytest-xdist workers on two cores (their jobs wait on locks, Slurm and snakemake
# start-up part of the time): a module's tests that share a campaign run in one of them
TEST_WORKERS ?= 3
test: $(BIN)/.installed $(BIN)/.dft
	$(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadgroup --durations=25

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/ruff format --check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint --cores 1
	# the Snakefiles almomd init writes
	rm -rf build/lint-campaign build/lint-module
	$(BIN)/almomd init build/lint-campaign > /dev/null
	$(BIN)/almomd init --module build/lint-module > /dev/null
	$(BIN)/snakefmt --check build/lint-campaign/Snakefile build/lint-module/Snakefile

status: $(BIN)/.installed
	$(BIN)/almomd status

# the demo's results, logs and job benchmarks (the benchmark scripts stay)
clean-demo:
	rm -rf results logs .snakemake .cache benchmarks/iter_* benchmarks/initial benchmarks/heldout benchmarks/production
