"""One run: its validated settings, its folders, its results, and what its tables and figures carry.

Every entry point reaches a run the same way — the notebooks, the ``otinterp`` command line, the
explorer and ``compare``::

    run = Run.open("smoke", seed=1)         # a profile name or a YAML path, then overrides
    run.config.n_intervals                   # the settings (otinterp.params.Params: a schema, no I/O)
    run.results_dir, run.tables_dir          # the folders
    pairs, results = run.pairs(), run.results()
    notes = run.context(results).notes       # model, caveat, seed averaging, trace: on every table

A profile's name is its file's name; its run folder is ``runs/<name>`` (or under
``$OTINTERP_RUNS``) unless it sets ``run_dir``. docs/definitions.md §11 says what a run folder holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otinterp.params import Params, load

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Run", "Context"]


@dataclass(frozen=True)
class Context:
    """What every table and figure of a run must carry.

    Attributes
    ----------
    model : str
        ``"model: <spec> (<family> family)"``, or the spec alone before any result names its family.
    caveat : str or None
        The random-weights caveat (:attr:`otinterp.params.Params.caveat`), None for real weights.
    seeds : str or None
        How per-pair values average over latent seeds, when there are several.
    trace : str or None
        The results folder, settings hash and code version the numbers come from.
    """

    model: str
    caveat: str | None = None
    seeds: str | None = None
    trace: str | None = None

    @property
    def notes(self) -> list[str]:
        """The lines to write under a table or in a figure's metadata (None entries dropped)."""
        return [n for n in (self.model, self.caveat, self.seeds, self.trace) if n]


@dataclass(frozen=True)
class Run:
    """A run of one profile: ``config`` (validated settings) and the folders that follow from it."""

    config: Params

    @classmethod
    def open(cls, profile: str | Path = "smoke", **overrides: Any) -> "Run":
        """The run of ``profile`` (a name, ``params/<name>.yaml``, or a YAML path) with ``overrides``.

        Raises
        ------
        FileNotFoundError
            For an unknown profile (the message lists those that exist).
        ValueError, TypeError
            For an unknown parameter or a bad value, in one line naming it.
        """
        return cls(load(profile, **overrides))

    # --- folders ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The profile's name."""
        return self.config.profile

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def figures_dir(self) -> Path:
        return Path(self.config.figures_dir)

    @property
    def pairs_path(self) -> Path:
        """The pair table notebook 01 (``otinterp pairs``) writes and the experiment reads."""
        return self.config.pairs_path

    @property
    def results_dir(self) -> Path:
        """The results store (:mod:`otinterp.store`): manifest, parts, records."""
        return self.config.results_dir

    @property
    def tables_dir(self) -> Path:
        return self.config.tables_dir

    # --- contents ---------------------------------------------------------------------------
    def check_inputs(self) -> None:
        """Read the pair source's files as notebook 01 will, and raise what its readers raise.

        The CSV's or the CxC files' contents are checked (columns, scores, prompts, encoding, pair
        ids) and the Karpathy captions read, by :func:`otinterp.data.source_pairs`; nothing is
        written. The bundled pairs ship with the package and are not read.

        Raises
        ------
        FileNotFoundError, ValueError
            The first problem, in one line naming the file (and, in a CSV, the line).
        """
        if self.config.input_files():
            from otinterp.data.sampling import source_pairs  # pandas: only when there are files to read

            source_pairs(self.config)

    def pairs(self) -> "pd.DataFrame":
        """The run's pair table (written by notebook 01 or ``otinterp pairs``)."""
        from otinterp.data import read_pairs

        return read_pairs(self.pairs_path)

    def results(self, pairs: "pd.DataFrame | None" = None) -> "pd.DataFrame":
        """The results of the current pair table, seeds and paths, with the measures derived."""
        from otinterp.store import load_results

        return load_results(self.results_dir, self.pairs() if pairs is None else pairs, params=self.config)

    def context(self, results: "pd.DataFrame | None" = None) -> Context:
        """What this run's tables and figures carry; with ``results``, also its family, seeds and trace."""
        if results is None:
            return Context(model=f"model: {self.config.model}", caveat=self.config.caveat)
        from otinterp.stats import seeds_note
        from otinterp.store import trace_note

        family = ", ".join(results["family"].unique()) if "family" in results.columns else "unknown"
        return Context(model=f"model: {self.config.model} ({family} family)", caveat=self.config.caveat,
                       seeds=seeds_note(results), trace=trace_note(self.results_dir))
