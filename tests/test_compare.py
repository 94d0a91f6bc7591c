"""Comparing finished runs: loading, Table 1 per model, PPL gains, verdicts, the figure, notebook 06."""

from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest

from otinterp import compare, params, stats, store
from otinterp.store import result_key
from otinterp.data import write_pairs
from otinterp.plots import save_figure

GROUPS = tuple(np.arange(1, 11) / 2)
PER_GROUP = 6
K = 4
TRAINED = "org/trained-diffusion"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_compare_models.ipynb"


def pair_table(per_group=PER_GROUP):
    """A pair table with every caption distinct (the caption-disjoint subset is every pair)."""
    rows = [{"pair_id": f"g{g:.1f}-p{i}", "prompt_a": f"caption {g} {i} a", "prompt_b": f"caption {g} {i} b",
             "score": g - 0.25, "group": g, "source_a": f"a{g}{i}", "source_b": f"b{g}{i}"}
            for g in GROUPS for i in range(per_group)]
    return pd.DataFrame(rows)


def unit_rows(pair, seed, p, rng, gain):
    """The rows experiment.unit_rows makes for one unit, with synthetic numbers: OT's PPL is lower
    than the others' by ``gain(group)`` times a positive random factor (negative gain: higher)."""
    w2 = 6 - pair.group + rng.uniform(0, 0.5)
    ppl_ot = 0.6 - 0.05 * pair.group + rng.uniform(0, 0.05)
    out = []
    for j, c in enumerate(p.paths):
        cost = w2 * (1 + j * (0.1 * pair.group + rng.uniform(0, 0.05)))
        ppl = ppl_ot + j * gain(pair.group) * rng.uniform(0.5, 1.5)
        out.append({
            "pair_key": store.pair_key(pair.pair_id, pair.prompt_a, pair.prompt_b), "pair_id": pair.pair_id,
            "seed": seed, "path": c, "prompt_a": pair.prompt_a, "prompt_b": pair.prompt_b,
            "group": float(pair.group), "score": float(pair.score), "cost": cost, "w2": w2, "cost_ratio": cost / w2,
            "ppl": ppl, "distances": [ppl] * K, "max_step": ppl, "total_length": K * ppl, "smoothness": 1.0,
            "path_efficiency": 1.0, "excursion": 0.0, "family": "sd15", "model": p.model,
            "lpips_backbone": p.lpips_backbone,
        })
    return out


def fake_run(run_dir, model, *, gain=lambda g: 0.02 * g, seeds=(0,), per_group=PER_GROUP, rng_seed=0):
    """A finished run folder written through otinterp.store, without rendering."""
    run_dir = Path(run_dir)
    p = params.make(model=model, run_dir=str(run_dir), lpips_backbone="random", seeds=list(seeds))
    pairs = pair_table(per_group)
    write_pairs(pairs, run_dir / "pairs.parquet")
    store.open_results(run_dir / "results", p, pairs)
    rng = np.random.default_rng(rng_seed)
    rows = [r for pair in pairs.itertuples() for s in seeds for r in unit_rows(pair, s, p, rng, gain)]
    units = [(store.pair_key(pr.pair_id, pr.prompt_a, pr.prompt_b), s) for pr in pairs.itertuples() for s in seeds]
    store.write_part(run_dir / "results", pd.DataFrame(rows), units, p.paths, result_key(p), "test")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained model with a large OT advantage (two latent seeds), and the random-weight control
    with a smaller one that shrinks with the group."""
    root = tmp_path_factory.mktemp("runs")
    return {"trained": fake_run(root / "trained", TRAINED, gain=lambda g: 0.05, seeds=(0, 1)),
            "sd15-random": fake_run(root / "sd15-random", "sd15-random", gain=lambda g: 0.01 * (6 - g), rng_seed=1)}


@pytest.fixture(scope="module")
def loaded(runs):
    return compare.load_runs(runs)


def test_random_weight_models_and_labels():
    assert compare.is_random_weight("sd15-random") and compare.is_random_weight("tiny")
    assert not compare.is_random_weight(TRAINED)
    assert compare.model_label("sd15-random", "sd15-random") == f"sd15-random, {compare.CONTROL_LABEL}"
    assert compare.model_label("sdxl", TRAINED) == f"sdxl ({TRAINED})"


def test_load_runs_adds_the_run_model_family_and_weights(runs, loaded):
    assert list(pd.unique(loaded["run"])) == ["trained", "sd15-random"]
    by_run = loaded.groupby("run", sort=False)
    assert by_run["model"].unique().map(list).to_dict() == {"trained": [TRAINED], "sd15-random": ["sd15-random"]}
    assert (loaded["family"] == "sd15").all()
    assert by_run["weights"].first().to_dict() == {"trained": compare.TRAINED_LABEL,
                                                   "sd15-random": compare.CONTROL_LABEL}
    # every pair, seed and coupling of each run, as store.load_results gives them
    assert by_run.size().to_dict() == {"trained": 60 * 2 * 3, "sd15-random": 60 * 3}
    alone = store.load_results(runs["trained"] / "results")
    mine = loaded[loaded["run"] == "trained"].set_index(["pair_id", "seed", "path"])["ppl"]
    pd.testing.assert_series_equal(mine.sort_index(), alone.set_index(["pair_id", "seed", "path"])["ppl"].sort_index())
    # the random-weights caveat is carried; the trained run has only the random LPIPS one
    assert "random weights" in by_run["caveat"].first()["sd15-random"]
    assert by_run["caveat"].first()["trained"] == "LPIPS with a random backbone"


def test_load_runs_names_a_missing_run(tmp_path, runs):
    with pytest.raises(FileNotFoundError, match=r"run 'sdxl': folder .*nowhere does not exist"):
        compare.load_runs({**runs, "sdxl": tmp_path / "nowhere"})
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match=r"run 'half'.*manifest.json"):
        compare.load_runs({"half": tmp_path / "unfinished"})
    with pytest.raises(ValueError, match="at least one run"):
        compare.load_runs({})


def test_find_runs_takes_folders_with_a_manifest(tmp_path, runs):
    fake_run(tmp_path / "b", "tiny")
    fake_run(tmp_path / "a", "tiny", rng_seed=3)
    (tmp_path / "c" / "results").mkdir(parents=True)
    assert compare.find_runs(tmp_path) == {"a": tmp_path / "a", "b": tmp_path / "b"}
    assert compare.find_runs(tmp_path / "absent") == {}


def test_table1_by_model_is_each_runs_table1_stacked(loaded):
    table = compare.table1_by_model(loaded, alpha=0.05)
    labels = [f"trained ({TRAINED})", f"sd15-random, {compare.CONTROL_LABEL}"]
    assert list(table.index.get_level_values("model").unique()) == labels
    assert list(table.columns) == [f"{g:.1f}" for g in GROUPS]
    for label, run in zip(labels, ("trained", "sd15-random")):
        own = stats.table1(stats.paired_tests(loaded[loaded["run"] == run], "ppl", others=["clip", "random"]))
        pd.testing.assert_frame_equal(table.loc[label], own, check_names=False)
    # OT is lower in every pair of every group: the exact two-sided p of 6 pairs is 2/64
    assert set(table.loc[labels[0]].drop(index=stats.N_ROW).to_numpy().ravel()) == {"*"}
    assert set(table.loc[(labels[0], stats.N_ROW)]) == {"6"}


def test_table1_by_model_marks_ot_worse_and_fills_absent_groups(tmp_path, loaded):
    worse = fake_run(tmp_path / "worse", TRAINED, gain=lambda g: -0.05)
    both = pd.concat([loaded[(loaded["run"] == "trained") & (loaded["group"] < 5)],
                      compare.load_runs({"worse": worse})])
    table = compare.table1_by_model(both)
    assert set(table.loc[f"worse ({TRAINED})"].drop(index=stats.N_ROW).to_numpy().ravel()) == {"*" + stats.AGAINST_OT}
    assert (table.loc[f"trained ({TRAINED})", "5.0"].drop(index=stats.N_ROW) == "n/a").all()


def test_ppl_gains_are_per_pair_seed_means_against_brute_force(loaded):
    gains = compare.ppl_gains(loaded)
    assert len(gains) == 2 * 2 * len(GROUPS)
    for row in gains.sample(8, random_state=0).itertuples():
        rows = loaded[(loaded["run"] == row.run) & (loaded["group"] == row.group)]
        mean = rows.groupby(["pair_id", "path"])["ppl"].mean().unstack()
        other = row.comparison.split()[-1]
        gain = mean[other] - mean["ot"]
        assert row.n == PER_GROUP
        assert row.median_gain == pytest.approx(np.median(gain))
        assert row.median_relative_gain == pytest.approx(np.median(gain / mean[other]))
        assert row.rank_biserial == pytest.approx(-stats.rank_biserial(mean["ot"] - mean[other]))
    trained = gains[gains["run"] == "trained"]
    assert (trained["median_gain"] > 0).all() and (trained["rank_biserial"] == 1).all()
    control = gains[(gains["run"] == "sd15-random") & (gains["comparison"] == "ot vs random")]
    assert (control["weights"] == compare.CONTROL_LABEL).all()
    by_group = control.set_index("group")["median_gain"]
    assert by_group[0.5] > 3 * by_group[5.0] > 0  # the control's gain shrinks with similarity


def test_verdicts_by_model_side_by_side(loaded):
    table = compare.verdicts_by_model(loaded, alpha=0.05, min_effect=0.1, n_resamples=200)
    assert list(table.index) == ["H1", "H2", "H3", "H4"]
    control = f"sd15-random, {compare.CONTROL_LABEL}"
    assert list(table.columns) == ["hypothesis", f"trained ({TRAINED}): all pairs",
                                   f"trained ({TRAINED}): caption-disjoint", f"{control}: all pairs",
                                   f"{control}: caption-disjoint", "alpha", "min_effect", "disagreement"]
    for run, label in (("trained", f"trained ({TRAINED})"), ("sd15-random", control)):
        own = stats.verdicts(stats.hypothesis_tests(loaded[loaded["run"] == run], n_resamples=200)).set_index("id")
        assert table[f"{label}: all pairs"].to_dict() == own["verdict_all"].to_dict()
        assert table[f"{label}: caption-disjoint"].to_dict() == own["verdict_disjoint"].to_dict()
    # the control's OT gain shrinks with the group: H4 (the gain grows with similarity) is contradicted
    assert table.loc["H4", f"{control}: all pairs"] == "contradicted"
    assert table.loc["H3", f"trained ({TRAINED}): all pairs"] == "supported"


def test_notes_carry_each_caveat_and_the_control(loaded):
    lines = compare.notes(loaded)
    assert f"sd15-random, {compare.CONTROL_LABEL}: random weights: images and numbers mean nothing; " \
           "LPIPS with a random backbone" in lines
    assert any(line.startswith(f"trained ({TRAINED}): Each pair's value is its mean over 2") for line in lines)
    assert lines[-1] == compare.CONTROL_NOTE
    assert any(line.startswith(f"trained ({TRAINED}): PPL at K = ") for line in lines)
    assert not any("#" in line for line in lines)  # stats.write_table refuses '#'


def test_figure_draws_the_control_distinctly_and_names_the_models(tmp_path, loaded):
    gains = compare.ppl_gains(loaded)
    fig = compare.ppl_gain_figure(gains, note="a note")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["OT vs. CLIP", "OT vs. Random"]
    assert TRAINED in fig._suptitle.get_text() and "sd15-random" in fig._suptitle.get_text()
    assert fig._suptitle.get_text().endswith("\na note")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    control = f"sd15-random, {compare.CONTROL_LABEL}"
    assert set(lines) == {f"trained ({TRAINED})", control}
    assert lines[control].get_linestyle() == "--" and lines[f"trained ({TRAINED})"].get_linestyle() == "-"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [f"trained ({TRAINED})", control]
    np.testing.assert_allclose(lines[control].get_ydata(),
                               gains.query("run == 'sd15-random' and comparison == 'ot vs clip'")["median_gain"])
    paths = save_figure(fig, tmp_path, "gains", formats=["png"])
    assert paths[0].stat().st_size > 0
    with pytest.raises(ValueError, match="unknown measure 'mean'"):
        compare.ppl_gain_figure(gains, measure="mean")


def test_tables_need_the_columns_of_load_runs(loaded):
    with pytest.raises(ValueError, match="pass the table of load_runs"):
        compare.ppl_gains(loaded.drop(columns=["run"]))


def parameters_cell():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    return cells[0].source


def test_notebook_parameters_cell():
    assert parameters_cell().split("\n") == ["runs = {}", "figures_dir = None", "alpha = 0.05", "min_effect = 0.1"]


def outputs_text(notebook):
    """Everything the executed ``notebook`` printed or displayed as text."""
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    outputs = [o for c in cells if c.cell_type == "code" for o in c.outputs]
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


@pytest.mark.slow
def test_notebook_06_compares_runs(tmp_path, runs):
    figures = tmp_path / "figures"
    out = tmp_path / "06.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False,
        parameters={"runs": {k: str(v) for k, v in runs.items()}, "figures_dir": str(figures)})
    text = outputs_text(out)
    assert compare.CONTROL_NOTE in text and compare.CONTROL_LABEL in text
    assert "compare needs two finished runs" not in text
    assert (figures / "compare_ppl_gain.png").is_file()
    written = stats.read_table_csv(figures / "compare_table1.csv")
    assert set(written["model"]) == {f"trained ({TRAINED})", f"sd15-random, {compare.CONTROL_LABEL}"}
    assert (figures / "compare_verdicts.md").read_text().count(compare.CONTROL_NOTE) == 1


@pytest.mark.slow
def test_notebook_06_stops_gracefully_with_one_run(tmp_path, runs):
    out = tmp_path / "06.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False,
        parameters={"runs": {"trained": str(runs["trained"])}, "figures_dir": str(tmp_path / "figures")})
    assert "compare needs two finished runs; found 1 (trained)" in outputs_text(out)
    assert not (tmp_path / "figures").exists()
