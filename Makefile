# otinterp — `make paper` runs the notebooks, `make test` runs the tests.
PROFILE ?= smoke
RUNS ?= runs
FIGURES ?= figures
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := $(RUNS)/$(PROFILE)
FIGS := $(FIGURES)/$(PROFILE)
NB_OUT := $(RUN)/notebooks
PARAMS := params/$(PROFILE).yaml
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTED := $(patsubst notebooks/%,$(NB_OUT)/%,$(NOTEBOOKS))
PACKAGE := $(shell find otinterp -name '*.py' -o -name '*.csv' 2>/dev/null)

.PHONY: setup test paper pairs lab bench clean
.DELETE_ON_ERROR:

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Each executed notebook depends on its source, the profile, the package and what it reads (below),
# so an edit re-runs only what it can change.
paper: $(EXECUTED)

$(NB_OUT)/%.ipynb: notebooks/%.ipynb $(PARAMS) $(PACKAGE) $(STAMP)
	@mkdir -p $(NB_OUT)
	$(BIN)/python -m otinterp.notebooks $< $@ --profile $(PROFILE) \
		--set run_dir=$(abspath $(RUN)) --set figures_dir=$(abspath $(FIGS))

# What each notebook reads: 01 the profile's data files, 02 the pairs from 01, 03 and 04 the
# results from 02. (00 stands alone.) A data file that is missing is left to 01's clear error.
INPUTS := $(shell test -x $(BIN)/python && $(BIN)/python -m otinterp.params --inputs $(PARAMS))
$(NB_OUT)/01_dataset.ipynb: $(wildcard $(INPUTS))
$(NB_OUT)/02_experiment.ipynb: $(NB_OUT)/01_dataset.ipynb
$(NB_OUT)/03_statistics.ipynb $(NB_OUT)/04_figures.ipynb: $(NB_OUT)/02_experiment.ipynb

# The pair table alone (e.g. before launching experiment shards): make pairs PROFILE=paper
pairs: $(NB_OUT)/01_dataset.ipynb

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python bench/couplings.py
	$(BIN)/python bench/render_throughput.py --model tiny

clean:
	rm -rf $(RUNS) $(FIGURES)/*/ .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
