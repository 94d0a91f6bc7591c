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

.PHONY: setup test paper lab bench clean
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

# Each executed notebook depends on its source, the profile, the package and the notebook
# before it, so an edit re-runs only what it can change.
paper: $(EXECUTED)

$(NB_OUT)/%.ipynb: notebooks/%.ipynb $(PARAMS) $(PACKAGE) $(STAMP)
	@mkdir -p $(NB_OUT)
	$(BIN)/python -m otinterp.notebooks $< $@ --profile $(PROFILE) \
		--set run_dir=$(abspath $(RUN)) --set figures_dir=$(abspath $(FIGS))

# Notebook order: each executed notebook needs the one before it (its outputs are the next one's inputs).
$(foreach i,$(shell seq 2 $(words $(EXECUTED))),$(eval $(word $(i),$(EXECUTED)): $(word $(shell expr $(i) - 1),$(EXECUTED))))

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python bench/couplings.py
	$(BIN)/python bench/render_throughput.py --model tiny

clean:
	rm -rf $(RUNS) $(FIGURES)/*/ .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
