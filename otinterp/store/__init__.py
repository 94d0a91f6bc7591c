"""The results store: a manifest of the settings, parts of rows, claims, provenance (docs/definitions.md §11).

A results folder is tied to the settings that decide the numbers (:meth:`Params.result_key`) and
to nothing else: the pair table may grow, shrink or change between runs. Its layout::

    manifest.json         the settings key, created exclusively by the first run, and that run's
                          full provenance (parameters, profile text, pair table, versions, git);
                          ``rebuilt`` when it was rebuilt from the parts
    runs/<id>.json        one record per invocation: provenance, settings hash, shard, images
                          rendered, images/s
    parts/part-*.parquet  result rows, written atomically; each part's schema metadata records
                          its settings (and their hash), its units (pair key, latent seed), its
                          couplings and a schema version
    locks/<unit>.lock     a unit being rendered (held by host/pid, refreshed while working)
    damaged/              parts moved aside by ``repair`` (their units are rendered again)

The parts are the truth: a manifest is never written that disagrees with them. A *unit* is one
pair (identified by :func:`pair_key`, a hash of its id and both prompts) under one initial latent
(``seed``). Its rows are the couplings rendered for it. Rows of pairs that are no longer in the
pair table stay on disk but are not returned by :func:`load_results`.

Modules: :mod:`~otinterp.store.keys` (pair keys, settings hashes), :mod:`~otinterp.store.parts`
(writing and reading parts, by schema version), :mod:`~otinterp.store.index` (which units are
done), :mod:`~otinterp.store.manifest` (opening a folder: the rule), :mod:`~otinterp.store.claims`
(locks), :mod:`~otinterp.store.records` (provenance, run records, rates),
:mod:`~otinterp.store.load` (reading the rows back).
"""

from otinterp.store.claims import LOCK_STALE_S, Claims
from otinterp.store.errors import DamagedResults
from otinterp.store.index import ResultIndex
from otinterp.store.keys import model_identity, pair_key, pair_keys, pairs_sha256, result_key, settings_sha256
from otinterp.store.load import load_results
from otinterp.store.manifest import check_settings, manifest_params, open_results, read_manifest, trace_note
from otinterp.store.parts import SCHEMA_VERSION, Part, read_part, read_rows, write_part
from otinterp.store.records import SAME_ARCHITECTURE, device_name, finish_record, measured_rate, start_record

__all__ = [
    "model_identity", "result_key", "pair_key", "pair_keys", "pairs_sha256", "settings_sha256", "open_results", "check_settings", "read_manifest",
    "manifest_params", "trace_note", "ResultIndex", "SCHEMA_VERSION", "Part", "write_part", "read_part", "read_rows", "Claims",
    "LOCK_STALE_S", "start_record", "finish_record", "measured_rate", "device_name", "SAME_ARCHITECTURE",
    "load_results", "DamagedResults",
]
