# otinterp — `make paper` runs the notebooks, `make test` runs the tests.
# The profile params/$(PROFILE).yaml is the one source of parameters; its run folder
# (runs/<profile> unless it sets run_dir) is asked of the `otinterp` command line, which reaches a
# run the way the notebooks do (otinterp.run.Run.open). RUNS=dir / FIGURES=dir move every profile's runs / figures elsewhere.
PROFILE ?= smoke
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE := $(shell find otinterp -name '*.py' -o -name '*.csv' -o -name '*.txt' 2>/dev/null)
ifdef RUNS
export OTINTERP_RUNS := $(abspath $(RUNS))
endif
ifdef FIGURES
export OTINTERP_FIGURES := $(abspath $(FIGURES))
endif

# Notebooks that `make paper` runs; 06 compares finished runs and is run by hand (or `make compare`).
NOTEBOOKS := $(filter-out notebooks/06_%,$(sort $(wildcard notebooks/*.ipynb)))
OTINTERP = $(BIN)/otinterp
SETTINGS = $(OTINTERP) settings --profile

.PHONY: setup test test-fast lock paper pairs notebooks lab bench compare clean FORCE
.DELETE_ON_ERROR:

setup: $(STAMP)

# The venv, the package with PyTorch, diffusers and JupyterLab at the versions CI tested
# (constraints.txt), a Jupyter kernel, and nbstripout as the git filter that keeps outputs out of
# committed notebooks (skipped outside a git checkout).
$(STAMP): pyproject.toml constraints.txt
	@echo "setup: installing otinterp and its dependencies (PyTorch, diffusers, JupyterLab) into $(VENV); this takes a few minutes, once"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then $(BIN)/nbstripout --install && \
		echo "setup: nbstripout strips outputs from notebooks as git stages them"; \
	else echo "setup: not a git checkout, nbstripout filter not installed"; fi
	@echo "setup: done"
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (make paper end to end, notebook runs, killed and concurrent runs).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Rewrites constraints.txt with the newest releases pyproject.toml allows: what pip would install
# into a fresh venv, resolved by a dry run in a throwaway venv (no gigabytes of wheels installed).
# Run make test on the new pins before committing them.
lock:
	tmp="$$(mktemp -d)" && trap 'rm -rf "$$tmp"' EXIT && $(PYTHON) -m venv "$$tmp" && \
	"$$tmp/bin/python" -m pip install --quiet --dry-run --ignore-installed --report - -e '.[dev]' \
		| "$$tmp/bin/python" -c 'import json, sys; \
			print("# The exact versions CI installs: make setup runs pip install -c constraints.txt -e .[dev]"); \
			print("# Regenerate with make lock (the newest releases pyproject.toml allows), then make test."); \
			pins = [i["metadata"] for i in json.load(sys.stdin)["install"] if not i["is_direct"]]; \
			print("\n".join(sorted((m["name"] + "==" + m["version"] for m in pins), key=str.lower)))' \
		> constraints.txt.new && mv constraints.txt.new constraints.txt

# Check the profile and read its input files first (one line and exit 2 on bad input, nothing
# written), then run the notebooks whose inputs changed, in a second make that knows the
# profile's folders.
paper pairs: $(STAMP)
	@$(OTINTERP) check --profile $(PROFILE)
	@$(MAKE) --no-print-directory $(if $(filter pairs,$@),pairs-only,notebooks) PROFILE=$(PROFILE) \
		RUN="$$($(SETTINGS) $(PROFILE) --show run_dir)" PARAMS="$$($(SETTINGS) $(PROFILE) --show profile_path)"

ifdef RUN
NB_OUT := $(RUN)/notebooks
EXECUTED := $(patsubst notebooks/%,$(NB_OUT)/%,$(NOTEBOOKS))
notebooks: $(EXECUTED)
pairs-only: $(NB_OUT)/01_dataset.ipynb

# Each executed notebook depends on its source, the profile, the package and what it reads (below),
# so an edit re-runs only what it can change.
$(NB_OUT)/%.ipynb: notebooks/%.ipynb $(PARAMS) $(PACKAGE) $(STAMP)
	@$(OTINTERP) notebook $< $@ --profile $(PARAMS)

# What each notebook reads: 01 the profile's data files, 02 the pairs from 01, 03 and 04 the
# results from 02. (00 and 05 stand alone.)
INPUTS := $(shell $(SETTINGS) $(PARAMS) --inputs)
$(NB_OUT)/01_dataset.ipynb: $(wildcard $(INPUTS))
$(NB_OUT)/02_experiment.ipynb: $(NB_OUT)/01_dataset.ipynb
$(NB_OUT)/03_statistics.ipynb $(NB_OUT)/04_figures.ipynb: $(NB_OUT)/02_experiment.ipynb

# File times cannot tell that pairs.parquet or results/ was deleted, or a part moved to
# results/damaged/, after the notebook that wrote it ran: the runner records what 01 and 02 wrote
# (names and sizes), and an executed notebook whose products changed runs again, and so do the
# notebooks after it (02 renders only what is missing).
STALE := $(shell $(SETTINGS) $(PARAMS) --stale)
ifneq ($(STALE),)
$(STALE): FORCE
endif
endif

# Compare finished runs side by side (notebook 06): make compare
compare: $(STAMP)
	@$(OTINTERP) compare

# JupyterLab on the profile's copies in <run folder>/lab (the executed notebooks, or fresh copies of
# the sources): the tracked notebooks stay clean, and make paper never reads or overwrites the copies.
lab: $(STAMP)
	@lab="$$($(OTINTERP) lab --profile $(PROFILE))" && $(BIN)/jupyter lab "$$lab"

bench: $(STAMP)
	$(BIN)/python bench/couplings.py
	$(BIN)/python bench/render_throughput.py --model tiny

# Removes one profile's run and figures (default smoke): a paper run holds days of GPU time.
clean: $(STAMP)
	rm -rf "$$($(SETTINGS) $(PROFILE) --show run_dir)" "$$($(SETTINGS) $(PROFILE) --show figures_dir)" .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
