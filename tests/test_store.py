"""The results store on its own, without rendering: parts are the truth (docs/definitions.md §11)."""

import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from otinterp import experiment, params, store
from otinterp.store.keys import result_key
from otinterp.store.records import PROVENANCE_FIELDS, provenance

P8 = params.make(steps=8, lpips_backbone="random")
P6 = P8.replace(steps=6)
PAIRS = pd.DataFrame({
    "pair_id": [f"pair-{i}" for i in range(4)],
    "prompt_a": [f"a photo of thing {i}" for i in range(4)],
    "prompt_b": [f"a drawing of thing {i}" for i in range(4)],
    "group": [1.0, 2.0, 3.0, 4.0], "score": [1.1, 2.1, 3.1, 4.1],
})
KEYS = store.pair_keys(PAIRS)


def fake_rows(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Result rows of every coupling of the pairs ``rows`` under ``seed``, with made-up numbers."""
    return pd.DataFrame([
        {"pair_key": store.pair_key(r.pair_id, r.prompt_a, r.prompt_b), "pair_id": r.pair_id, "seed": seed,
         "path": c, "prompt_a": r.prompt_a, "prompt_b": r.prompt_b, "group": r.group, "score": r.score,
         "distances": [0.1 * j + r.group] * 2, "end_to_end": 0.1, "farthest_from_ends": 0.05}
        for r in rows.itertuples() for j, c in enumerate(P8.paths)])


def as_older_version(path, version: int):
    """Rewrite a part as an older otinterp wrote it: version 2 named the paths ``couplings`` (record
    and column); version 1 also had no schema version and no settings, only their hash."""
    table = pq.read_table(path)
    metadata = table.schema.metadata
    table = table.rename_columns(["coupling" if c == "path" else c for c in table.column_names])
    meta = json.loads(metadata[b"otinterp"])
    old = {"schema_version": 2, "key": meta["key"], "key_sha256": meta["key_sha256"], "units": meta["units"],
           "couplings": meta["paths"], "run": meta["run"]}
    if version == 1:
        old = {k: old[k] for k in ("key_sha256", "units", "couplings", "run")}
    pq.write_table(table.replace_schema_metadata({**metadata, b"otinterp": json.dumps(old).encode()}), path)


def write(out, p, rows: slice, version: int = 3, run: str = "test"):
    """One part of ``p``'s settings holding the pairs ``PAIRS[rows]`` under seed 0, in ``version``'s layout."""
    chunk = PAIRS.iloc[rows]
    path = store.write_part(out, fake_rows(chunk), [(k, 0) for k in store.pair_keys(chunk)], p.paths,
                            result_key(p), run)
    if version < store.SCHEMA_VERSION:
        as_older_version(path, version)
    return path


def snapshot(out):
    """Every part's bytes, by path."""
    return {p: p.read_bytes() for p in sorted((out / "parts").glob("part-*.parquet"))}


PARTS = {"same": [(P8, slice(0, 2)), (P8, slice(2, 4))], "other": [(P6, slice(0, 2)), (P6, slice(2, 4))],
         "mixed": [(P8, slice(0, 2)), (P6, slice(2, 4))]}


def folder(out, manifest: str, parts: str, version: int):
    """A results folder with a ``manifest`` (present, missing or damaged: made for steps 8) and ``parts``."""
    if manifest != "missing":
        store.open_results(out, P8, PAIRS)
    for p, rows in PARTS[parts]:
        write(out, p, rows, version)
    if manifest == "damaged":
        path = out / "manifest.json"
        path.write_text(path.read_text()[:40])


def expected_refusal(manifest: str, parts: str, version: int, action: str) -> str | None:
    """The text the store refuses with, or None where it proceeds."""
    asked = P6 if action == "repair, other settings" else P8
    if manifest == "present" and asked is P6:
        return "steps: 8 there, 6 now"
    if manifest == "damaged" and not action.startswith("repair"):
        return "manifest.json is damaged"
    other = {p.steps for p, _ in PARTS[parts]} - {asked.steps}
    if not other:
        return None
    if version == 1:
        return "other settings (hash "
    return f"steps: {other.pop()} in the parts, {asked.steps} asked"


def act(out, action: str):
    """Open ``out`` as ``action`` does; a shard goes through the experiment (nothing left to render)."""
    if action == "shard":
        return experiment.run(P8, PAIRS, out, shard=(1, 2), pipe=object(), lpips_model=object(), disable=True)
    return store.open_results(out, P6 if action == "repair, other settings" else P8, PAIRS,
                              repair=action.startswith("repair"))


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("action", ["open", "repair", "repair, other settings", "shard"])
@pytest.mark.parametrize("parts", ["same", "other", "mixed"])
@pytest.mark.parametrize("manifest", ["present", "missing", "damaged"])
def test_the_store_refuses_or_proceeds_and_never_loses_a_valid_part(tmp_path, manifest, parts, action, version):
    folder(tmp_path, manifest, parts, version)
    before = snapshot(tmp_path)
    path = tmp_path / "manifest.json"
    manifest_before = path.read_bytes() if path.exists() else None
    refusal = expected_refusal(manifest, parts, version, action)
    if refusal:
        with pytest.raises(ValueError, match=re.escape(refusal)) as err:
            act(tmp_path, action)
        assert "\n" not in str(err.value)
        if "in the parts" in str(err.value):
            assert "--set run_dir=" in str(err.value)
        assert (path.read_bytes() if path.exists() else None) == manifest_before  # nothing written
    else:
        act(tmp_path, action)
        written = store.read_manifest(path)
        keys = {store.read_part(p).key_sha256 for p in before}
        assert keys == {written["key_sha256"]}  # the manifest agrees with every part
        assert ("rebuilt" in written) == (manifest != "present")
    assert snapshot(tmp_path) == before  # every valid part is still there, unchanged, and readable
    assert all(store.read_part(p) for p in before)
    assert not (tmp_path / "damaged").exists()


def test_a_missing_manifest_is_rebuilt_with_the_first_runs_provenance(tmp_path, capsys):
    first = store.start_record(tmp_path, P8, PAIRS, (0, 1))
    write(tmp_path, P8, slice(0, 2), run=first.stem)
    second = store.start_record(tmp_path, P8, PAIRS.iloc[:1], (0, 1))
    record = json.loads(first.read_text())
    manifest, index = store.open_results(tmp_path, P8, PAIRS)
    assert f"rebuilt {tmp_path / 'manifest.json'} from 1 part(s)" in capsys.readouterr().out
    assert manifest["rebuilt"]["provenance"] == f"runs/{first.name}" != f"runs/{second.name}"
    assert manifest["created"] == record["started"]
    assert {k: manifest[k] for k in PROVENANCE_FIELDS} == {k: record[k] for k in PROVENANCE_FIELDS}
    assert store.read_manifest(tmp_path / "manifest.json") == json.loads(json.dumps(manifest, default=str))
    assert len(index.done) == 2 and "manifest rebuilt" in store.trace_note(tmp_path)


def test_an_old_run_record_is_found_by_the_parts_that_name_it(tmp_path):
    old = store.start_record(tmp_path, P8, PAIRS, (0, 1))
    record = json.loads(old.read_text())
    del record["key_sha256"]  # records of the first layout hold no settings hash
    old.write_text(json.dumps(record))
    write(tmp_path, P8, slice(0, 2), version=1, run=old.stem)
    manifest, _ = store.open_results(tmp_path, P8, PAIRS)
    assert manifest["rebuilt"]["provenance"] == f"runs/{old.name}"


def test_without_a_run_record_the_rebuilding_run_says_whose_provenance_it_is(tmp_path):
    write(tmp_path, P8, slice(0, 2))
    manifest, _ = store.open_results(tmp_path, P8, PAIRS)
    assert manifest["rebuilt"]["provenance"].startswith("this run")
    assert manifest.keys() >= set(PROVENANCE_FIELDS) == provenance(P8, PAIRS).keys()


@pytest.mark.parametrize("damage", ["truncated", "rows", "record", "settings"])
def test_repair_moves_only_the_damaged_part(tmp_path, damage):
    store.open_results(tmp_path, P8, PAIRS)
    valid = [write(tmp_path, P8, slice(0, 1)), write(tmp_path, P8, slice(1, 2), version=1)]
    bad = write(tmp_path, P8, slice(2, 4))
    table = pq.read_table(bad)
    meta = json.loads(table.schema.metadata[b"otinterp"])
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    elif damage == "rows":
        pq.write_table(table.slice(1), bad)
    else:
        meta = {**meta, "units": "not a list"} if damage == "record" else {**meta, "key": {**meta["key"], "steps": 6}}
        pq.write_table(table.replace_schema_metadata({b"otinterp": json.dumps(meta).encode()}), bad)
    before = snapshot(tmp_path)
    del before[bad]
    with pytest.raises(store.DamagedResults, match=rf"{bad.name} .*--repair"):
        store.open_results(tmp_path, P8, PAIRS)
    with pytest.raises(ValueError, match="steps: 8 there, 6 now"):  # other settings: refused, nothing moved
        store.open_results(tmp_path, P6, PAIRS, repair=True)
    assert bad.exists()
    _, index = store.open_results(tmp_path, P8, PAIRS, repair=True)
    assert [p.name for p in (tmp_path / "damaged").iterdir()] == [bad.name]
    assert snapshot(tmp_path) == before and sorted(index.files) == sorted(valid)
    assert len(index.done) == 2


def test_a_damaged_part_and_parts_of_other_settings_refuse_before_anything_moves(tmp_path):
    write(tmp_path, P6, slice(0, 2))
    bad = write(tmp_path, P8, slice(2, 4))
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match="steps: 6 in the parts, 8 asked"):
        store.open_results(tmp_path, P8, PAIRS, repair=True)
    assert bad.exists() and not (tmp_path / "manifest.json").exists()


def test_a_part_of_a_newer_schema_is_refused_and_never_moved(tmp_path):
    path = write(tmp_path, P8, slice(0, 2))
    table = pq.read_table(path)
    meta = {**json.loads(table.schema.metadata[b"otinterp"]), "schema_version": store.SCHEMA_VERSION + 1}
    pq.write_table(table.replace_schema_metadata({b"otinterp": json.dumps(meta).encode()}), path)
    with pytest.raises(ValueError, match=r"newer otinterp \(part schema version 4") as err:
        store.open_results(tmp_path, P8, PAIRS, repair=True)
    assert not isinstance(err.value, store.DamagedResults) and path.exists()


def test_every_layout_reads_the_same_and_parts_of_other_settings_never_share_a_name(tmp_path):
    v3, v2, v1 = (store.read_part(write(tmp_path / str(v), P8, slice(0, 2), version=v)) for v in (3, 2, 1))
    assert (v3.schema_version, v2.schema_version, v1.schema_version) == (3, 2, 1)
    assert (v3.key, v2.key, v1.key) == (result_key(P8), result_key(P8), None)
    assert (v1.units, v1.paths, v1.key_sha256) == (v2.units, v2.paths, v2.key_sha256) == (v3.units, v3.paths,
                                                                                         v3.key_sha256)
    assert (v1.path_column, v2.path_column, v3.path_column) == ("coupling", "coupling", "path")
    rows = [store.read_rows(p) for p in (v1, v2, v3)]
    pd.testing.assert_frame_equal(rows[0], rows[2]) and pd.testing.assert_frame_equal(rows[1], rows[2])
    assert "coupling" not in rows[0].columns and set(rows[0]["path"]) == set(P8.paths)
    assert write(tmp_path / "3", P6, slice(0, 2)).name != v3.path.name


def test_old_parts_load_under_the_new_column_name(tmp_path):
    write(tmp_path, P8, slice(0, 2), version=2)
    write(tmp_path, P8, slice(2, 4), version=3)
    store.open_results(tmp_path, P8, PAIRS)
    loaded = store.load_results(tmp_path, PAIRS, params=P8)
    assert len(loaded) == 4 * len(P8.paths) and "coupling" not in loaded.columns
    assert loaded.groupby("pair_id")["path"].apply(list).map(len).eq(len(P8.paths)).all()


def test_loading_a_folder_without_its_manifest_says_how_to_rebuild_it(tmp_path):
    write(tmp_path, P8, slice(0, 2))
    with pytest.raises(FileNotFoundError, match="has parts but no manifest.json: run the experiment again"):
        store.load_results(tmp_path)
    store.open_results(tmp_path, P8, PAIRS)
    assert len(store.load_results(tmp_path, PAIRS)) == 2 * len(P8.paths)
