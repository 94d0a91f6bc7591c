"""Tests of otinterp.data: similarity groups, CxC and Karpathy readers, pair tables, sampling."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import otinterp.params
from otinterp import data
from otinterp.data import PAIR_COLUMNS

HEADER = "caption1,caption2,agg_score,sampling_method\n"


def cid(sentid: int) -> str:
    return f"COCO_val2014:sentid:{sentid}"


def write_cxc(path: Path, rows: list[tuple[int, int, float]]) -> Path:
    lines = [f"{cid(a)},{cid(b)},{s},c2c_isim\n" for a, b, s in rows]
    path.write_text(HEADER + "".join(lines))
    return path


def write_coco(path: Path, captions: dict[int, str], per_image: int = 5) -> Path:
    items = list(captions.items())
    images = [
        {"filename": f"img{i}.jpg", "sentences": [{"sentid": s, "raw": t, "tokens": t.split()} for s, t in
                                                  items[i:i + per_image]]}
        for i in range(0, len(items), per_image)
    ]
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


# Sentids 1..20; 5 and 6 are the same text up to case and white space.
CAPTIONS = {i: f"A photo of thing number {i}." for i in range(1, 21)} | {5: "A cat on a mat.", 6: "  a CAT on   a mat. "}
ROWS = [(1, 2, 0.0), (3, 4, 0.5), (5, 6, 4.8), (7, 8, 0.51), (9, 10, 2.2), (11, 12, 2.3), (13, 14, 5.0),
        (15, 16, 3.1), (17, 18, 1.0), (19, 20, 4.6)]


@pytest.fixture
def cxc_file(tmp_path: Path) -> Path:
    return write_cxc(tmp_path / "sts_val.csv", ROWS)


@pytest.fixture
def coco_file(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "dataset_coco.json", CAPTIONS)


def synthetic_cxc(n: int, seed: int = 0) -> tuple[pd.DataFrame, dict[int, str]]:
    """``n`` CxC rows pairing sentids (2i, 2i+1) with scores in hundredths, and their captions."""
    rng = np.random.default_rng(seed)
    a = np.arange(n) * 2
    cxc = pd.DataFrame({
        "caption1": "COCO_val2014:sentid:" + pd.Series(a).astype(str),
        "caption2": "COCO_val2014:sentid:" + pd.Series(a + 1).astype(str),
        "agg_score": rng.integers(0, 501, n) / 100,
        "sampling_method": "c2c_isim",
    })
    return cxc, {i: f"caption {i}" for i in range(2 * n)}


def build_quietly(*args, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return data.build_pairs(*args, **kwargs)


# --- similarity groups ---------------------------------------------------------------------


@pytest.mark.parametrize("score, group", [
    (0, 0.5), (0.5, 0.5), (0.51, 1.0), (1.0, 1.0), (3.1, 3.5), (2.9999999, 3.0), (3.0000001, 3.0),
    (4.99, 5.0), (5.0, 5.0),
])
def test_similarity_group_boundaries(score, group):
    assert data.similarity_group(score) == group


def test_similarity_group_matches_integer_reference():
    hundredths = np.arange(501)
    expected = np.maximum(-(-hundredths // 50), 1) * 0.5  # exact integer ceil(h / 50)
    scores = pd.Series(hundredths / 100, index=hundredths + 1000)
    got = data.similarity_group(scores)
    assert isinstance(got, pd.Series) and got.index.equals(scores.index)
    np.testing.assert_array_equal(got.to_numpy(), expected)
    np.testing.assert_array_equal(data.similarity_group(list(scores)), expected)
    assert set(expected) == set(data.all_groups())


@pytest.mark.parametrize("score, match", [
    (5.2, r"score 5\.2 is outside \[0, 5\]"), (-0.01, r"score -0\.01 is outside"), (np.nan, r"score nan"),
    ([1.0, 6.0, 7.0], r"score 6\.0 is outside \[0, 5\] \(2 scores are\)"),
])
def test_similarity_group_rejects_scores_out_of_range(score, match):
    with pytest.raises(ValueError, match=match):
        data.similarity_group(score)


def test_similarity_group_bin_width():
    assert data.similarity_group([0, 0.5, 1.0, 1.2, 5.0], bin_width=1.0).tolist() == [1.0, 1.0, 1.0, 2.0, 5.0]
    np.testing.assert_array_equal(data.all_groups(0.5), np.arange(1, 11) * 0.5)
    for bad in (0.3, 0.0, -0.5, 6.0):
        with pytest.raises(ValueError, match="bin_width must divide 5 into whole groups"):
            data.similarity_group(1.0, bin_width=bad)


def test_score_bin_edges_keep_boundary_scores_in_their_group():
    edges = data.score_bin_edges()
    assert len(edges) == 51
    scores = np.arange(501) / 100  # every score CxC can have
    bins = np.digitize(scores, edges) - 1  # np.histogram's bins, closed on the left
    assert bins.min() == 0 and bins.max() == 49
    counts, _ = np.histogram(scores, edges)
    assert counts.sum() == len(scores)
    groups = data.similarity_group(scores)
    for b in range(50):  # each bin lies inside one group, the group of its scores
        assert len(set(groups[bins == b])) == 1
    assert bins[scores == 1.0] == 9 and bins[scores == 0.0] == 0
    with pytest.raises(ValueError, match="width must divide"):
        data.score_bin_edges(0.3)


# --- CxC and Karpathy files ----------------------------------------------------------------


def test_load_cxc_reads_files_and_keeps_their_names(tmp_path, cxc_file):
    other = write_cxc(tmp_path / "sts_test.csv", [(2, 3, 1.5)])
    cxc = data.load_cxc([cxc_file, other])
    assert list(cxc.columns) == ["caption1", "caption2", "agg_score", "sampling_method", "file"]
    assert cxc["file"].tolist() == [str(cxc_file)] * len(ROWS) + [str(other)]
    assert cxc["agg_score"].tolist() == [s for *_, s in ROWS] + [1.5]
    assert data.load_cxc(str(cxc_file)).equals(cxc.iloc[:len(ROWS)])


@pytest.mark.parametrize("text, match", [
    (HEADER.replace("\n", ",extra\n") + f"{cid(1)},{cid(2)},1.0,x,y\n",
     r"bad\.csv: unexpected column\(s\) 'extra'"),
    ("caption1,caption2,agg_score\n" + f"{cid(1)},{cid(2)},1.0\n", r"bad\.csv: missing column\(s\) 'sampling_method'"),
    (HEADER + f"{cid(1)},{cid(2)},1.0,x\n{cid(3)},{cid(4)},5.2,x\n",
     r"bad\.csv, line 3: agg_score '5\.2' is not a number in \[0, 5\]"),
    (HEADER + f"{cid(1)},{cid(2)},high,x\n", r"bad\.csv, line 2: agg_score 'high' is not a number"),
    (HEADER + f"{cid(1)},{cid(2)},1.0,x\n{cid(1)},COCO_train2014:sentid:4,1.0,x\n",
     r"bad\.csv, line 3: caption2 'COCO_train2014:sentid:4' is not of the form COCO_val2014:sentid:N"),
    (HEADER + f"{cid(1)},{cid(2)},1.0,x,surplus\n", r"bad\.csv, line 2: malformed CSV: 5 fields, the header has 4"),
    (HEADER + f"{cid(1)},{cid(2)},1.0,x\n{cid(1)},{cid(2)},1.0,x,surplus\n", r"bad\.csv, line 3: malformed CSV: 5 fields, the header has 4"),
    ("", r"bad\.csv: empty file"),
])
def test_load_cxc_errors_name_file_and_row(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        data.load_cxc([tmp_path / "bad.csv"])


def test_load_cxc_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sts_val\.csv does not exist; run otinterp\.data\.fetch_paper_data\('data'\) or download by hand"):
        data.load_cxc([tmp_path / "sts_val.csv"])


def test_load_karpathy_captions_from_json_and_zip(tmp_path, coco_file):
    captions = data.load_karpathy_captions(coco_file)
    assert captions == {k: v.strip() for k, v in CAPTIONS.items()}
    with zipfile.ZipFile(tmp_path / "caption_datasets.zip", "w") as zf:
        zf.write(coco_file, "caption_datasets/dataset_coco.json")
    assert data.load_karpathy_captions(tmp_path / "caption_datasets.zip") == captions


@pytest.mark.parametrize("content, match", [
    ({"dataset": "coco"}, r"no 'images' list"),
    ({"images": [{"sentences": [{"raw": "x"}]}]}, r"images\[0\]\.sentences\[0\] needs an integer 'sentid'"),
    ({"images": [{"sentences": [{"sentid": 1, "raw": "a"}]}, {"sentences": [{"sentid": 1, "raw": "b"}]}]},
     r"sentid 1 appears twice \(again in images\[1\]\)"),
    ({"images": [{"filename": "x.jpg"}]}, r"images\[0\] has no 'sentences' list"),
])
def test_load_karpathy_captions_rejects_other_structures(tmp_path, content, match):
    (tmp_path / "c.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        data.load_karpathy_captions(tmp_path / "c.json")


def test_load_karpathy_captions_errors_for_missing_file_and_bad_zip(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"caption_datasets\.zip.*data/dataset_coco\.json"):
        data.load_karpathy_captions(tmp_path / "dataset_coco.json")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("dataset_flickr8k.json", "{}")
    with pytest.raises(ValueError, match=r"the zip holds no dataset_coco\.json \(it has dataset_flickr8k\.json\)"):
        data.load_karpathy_captions(tmp_path / "other.zip")


# --- building and sampling pairs -----------------------------------------------------------


def test_build_pairs_resolves_ids_and_drops_identical_text(cxc_file, coco_file):
    captions = data.load_karpathy_captions(coco_file)
    with pytest.warns(UserWarning, match=r"fewer than 100 pairs in group\(s\) 0\.5 \(2\), 1\.0 \(2\)"):
        pairs = data.build_pairs(data.load_cxc(cxc_file), captions, per_group=100, seed=0)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    kept = [r for r in ROWS if r[0] != 5]
    assert sorted(pairs["pair_id"]) == sorted(f"cxc:{a}-{b}" for a, b, _ in kept)
    for row in pairs.itertuples():
        a, b = (int(s.rsplit(":", 1)[1]) for s in (row.source_a, row.source_b))
        assert (row.prompt_a, row.prompt_b) == (captions[a], captions[b])
        assert row.group == data.similarity_group(row.score)
    report = data.pairs_report(pairs)
    assert report.loc[5.0].tolist() == [2, 1, 2]  # (13, 14, 5.0), (19, 20, 4.6); (5, 6) dropped
    assert report["identical_dropped"].sum() == 1
    assert report["available"].sum() == len(pairs) == len(kept)


def test_build_pairs_unknown_id_is_an_error_naming_it(tmp_path, coco_file):
    cxc = data.load_cxc(write_cxc(tmp_path / "s.csv", [(1, 2, 1.0), (3, 999, 2.0)]))
    with pytest.raises(ValueError, match=r"1 caption id\(s\) not in the Karpathy captions, e\.g\. COCO_val2014:sentid:999"):
        data.build_pairs(cxc, data.load_karpathy_captions(coco_file), per_group=1, seed=0)


def test_build_pairs_duplicate_pair_is_an_error(tmp_path, coco_file):
    cxc = data.load_cxc(write_cxc(tmp_path / "s.csv", [(1, 2, 1.0), (3, 4, 2.0), (1, 2, 1.2)]))
    with pytest.raises(ValueError, match=r"pair_id 'cxc:1-2' appears 2 times"):
        data.build_pairs(cxc, data.load_karpathy_captions(coco_file), per_group=1, seed=0)


def test_sampling_is_reproducible_without_replacement_and_independent_of_row_order():
    cxc, captions = synthetic_cxc(800)
    first = build_quietly(cxc, captions, per_group=30, seed=3)
    shuffled = cxc.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(first, build_quietly(shuffled, captions, per_group=30, seed=3))
    assert first.attrs["report"] == build_quietly(shuffled, captions, per_group=30, seed=3).attrs["report"]
    other = build_quietly(cxc, captions, per_group=30, seed=4)
    assert set(other["pair_id"]) != set(first["pair_id"])
    assert first["pair_id"].is_unique
    everything = build_quietly(cxc, captions, per_group=10_000, seed=3).set_index("pair_id")
    assert set(first["pair_id"]) <= set(everything.index)
    pd.testing.assert_frame_equal(first.set_index("pair_id"), everything.loc[first["pair_id"]])
    available = everything.groupby("group").size()
    np.testing.assert_array_equal(first.groupby("group").size(), np.minimum(available, 30))


def test_pair_ids_are_stable_across_builds(tmp_path, cxc_file, coco_file):
    one = build_quietly(data.load_cxc(cxc_file), data.load_karpathy_captions(coco_file), per_group=1, seed=0)
    copy = write_cxc(tmp_path / "copy.csv", ROWS[::-1])
    two = build_quietly(data.load_cxc(copy), data.load_karpathy_captions(coco_file), per_group=1, seed=0)
    assert one["pair_id"].tolist() == two["pair_id"].tolist()
    expected = "p-" + hashlib.sha1("a cat\x1fa dog".encode()).hexdigest()[:12]
    assert data.prompt_pair_id("A  Cat ", "a DOG") == expected
    assert data.prompt_pair_id("a dog", "a cat") != expected


def test_sample_pairs_rejects_groups_off_the_grid():
    pairs = data.bundled_pairs()
    pairs.loc[0, "group"] = 0.7
    with pytest.raises(ValueError, match=r"group 0\.7 is not one of \[0\.5, 1\.0"):
        data.sample_pairs(pairs, per_group=1, seed=0)


def test_pairs_report_needs_a_sampled_table():
    with pytest.raises(ValueError, match="carries no report"):
        data.pairs_report(pd.DataFrame(columns=PAIR_COLUMNS))


def test_building_ten_by_thousand_pairs_from_88054_rows(tmp_path):
    cxc, captions = synthetic_cxc(88_054)
    paths = [tmp_path / "sts_val.csv", tmp_path / "sts_test.csv"]
    cxc.iloc[:44_009].to_csv(paths[0], index=False)
    cxc.iloc[44_009:].to_csv(paths[1], index=False)
    pairs = data.build_pairs(data.load_cxc(paths), captions, per_group=1000, seed=0)
    assert pairs.groupby("group").size().tolist() == [1000] * 10
    assert pairs["pair_id"].is_unique
    assert data.pairs_report(pairs)["available"].sum() == 88_054
    sentid_a = pairs["source_a"].str.rsplit(":", n=1).str[1]
    assert (pairs["prompt_a"] == "caption " + sentid_a).all()


# --- custom and bundled pairs --------------------------------------------------------------


def test_load_pairs_csv_with_score_group_or_both(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt_a,prompt_b,score\n a red bus ,a blue car,2.2\na dog,a cat,0\n")
    pairs = data.load_pairs_csv(path)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs["prompt_a"].tolist() == ["a red bus", "a dog"]
    assert pairs["group"].tolist() == [2.5, 0.5]
    assert pairs["pair_id"].tolist() == [data.prompt_pair_id("a red bus", "a blue car"), data.prompt_pair_id("a dog", "a cat")]
    assert pairs["source_a"].isna().all()
    path.write_text("prompt_a,prompt_b,group,pair_id,source_a,source_b\na,b,3.5,mine,x,\n")
    pairs = data.load_pairs_csv(path)
    assert pairs.loc[0, ["pair_id", "group", "source_a"]].tolist() == ["mine", 3.5, "x"]
    assert np.isnan(pairs.loc[0, "score"]) and pd.isna(pairs.loc[0, "source_b"])
    path.write_text("prompt_a,prompt_b,score,group\na,b,3.2,3.5\n")
    assert data.load_pairs_csv(path)["group"].tolist() == [3.5]


@pytest.mark.parametrize("text, match", [
    ("prompt_a,score\na,1\n", r"p\.csv: missing column\(s\) 'prompt_b'"),
    ("prompt_a,prompt_b,score,note\na,b,1,x\n", r"unexpected column\(s\) 'note'"),
    ("prompt_a,prompt_b\na,b\n", r"needs a 'score' or a 'group' column"),
    ("prompt_a,prompt_b,score\n", r"no pairs"),
    ("prompt_a,prompt_b,score\na,b,1\n  ,c,2\n", r"p\.csv, line 3: empty prompt_a"),
    ("prompt_a,prompt_b,score\na,b,high\n", r"p\.csv, line 2: score 'high' is not a number in \[0, 5\]"),
    ("prompt_a,prompt_b,score\na,b,7\n", r"line 2: score '7' is not a number in \[0, 5\]"),
    ("prompt_a,prompt_b,group\na,b,0.7\n", r"line 2: group '0\.7' is not one of \[0\.5, 1\.0"),
    ("prompt_a,prompt_b,score,group\na,b,3.2,4.0\n", r"line 2: group 4 does not hold score 3\.2 \(its group is 3\.5\)"),
    ("prompt_a,prompt_b,score\nA cat,a dog,1\na  cat,A DOG,2\n", r"pair_id 'p-[0-9a-f]{12}' appears 2 times"),
])
def test_load_pairs_csv_errors(tmp_path, text, match):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        data.load_pairs_csv(tmp_path / "p.csv")


def test_load_pairs_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pairs CSV .*nope\.csv does not exist"):
        data.load_pairs_csv(tmp_path / "nope.csv")


def test_bundled_pairs_load_without_network(monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    pairs = data.bundled_pairs()
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert pairs.groupby("group").size().reindex(data.all_groups()).ge(2).all()
    assert pairs["pair_id"].is_unique and pairs["score"].notna().all()
    assert set(pairs["source_a"]) == {"cxc-readme", "illustrative"}
    assert (pairs["source_a"] == "cxc-readme").sum() == 9
    assert not (pairs["prompt_a"].map(data.normalise_text) == pairs["prompt_b"].map(data.normalise_text)).any()


# --- the run's pair table ------------------------------------------------------------------


def test_pairs_table_for_each_source_and_atomic_write(tmp_path, cxc_file, coco_file):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt_a,prompt_b,score\na,b,1\nc,d,1\ne,f,4.9\n")
    params = {
        "bundled": {"pairs_source": "bundled", "per_group": 2},
        "csv": {"pairs_source": "csv", "pairs_csv": str(csv), "per_group": 1},
        "cxc": {"pairs_source": "cxc", "cxc_paths": [str(cxc_file)], "karpathy_path": str(coco_file), "per_group": 1},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = {k: data.pairs_table(otinterp.params.make(seed=1, **v)) for k, v in params.items()}
    assert len(tables["bundled"]) == 20 and set(tables["bundled"]["source_a"]) <= {"cxc-readme", "illustrative"}
    assert tables["csv"]["group"].tolist() == [1.0, 5.0]
    assert tables["cxc"]["group"].tolist() == [0.5, 1.0, 2.5, 3.5, 5.0]  # one of each group present
    out = tmp_path / "run" / "pairs.parquet"
    assert data.write_pairs(tables["bundled"], out) == out
    back = data.read_pairs(out)
    pd.testing.assert_frame_equal(back, tables["bundled"])
    pd.testing.assert_frame_equal(data.pairs_report(back), data.pairs_report(tables["bundled"]))
    assert [p.name for p in out.parent.iterdir()] == ["pairs.parquet"]


def test_write_and_read_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) 'source_a', 'source_b'"):
        data.write_pairs(pd.DataFrame(columns=PAIR_COLUMNS[:-2]), tmp_path / "x.parquet")
    assert not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match=r"run notebooks/01_dataset\.ipynb first"):
        data.read_pairs(tmp_path / "x.parquet")


# --- downloads (never touch the network) ---------------------------------------------------


def test_fetch_paper_data_offline_says_what_to_download(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dest = tmp_path / "data"
    with pytest.raises(ConnectionError, match=(
        r"could not download https://raw\.githubusercontent\.com/.*sts_val\.csv \(<urlopen error no network>\); download by hand: .*"
        + ".*".join(f"-> {re.escape(str(dest / name))}" for name in ("cxc/sts_val.csv", "cxc/sts_test.csv"))
        + rf".*caption_datasets\.zip -> {re.escape(str(dest / 'dataset_coco.json'))}"
    )):
        data.fetch_paper_data(dest)
    assert not list((tmp_path / "data").rglob("*"))


def test_fetch_paper_data_rejects_a_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the file"))
    with pytest.raises(ValueError, match=r"sts_val\.csv: downloaded 12 bytes with SHA-256 [0-9a-f]{64}, expected 3092201"):
        data.fetch_paper_data(tmp_path / "data")
    assert not list((tmp_path / "data").rglob("*"))


# --- CSV errors as an editor counts lines -----------------------------------------------------


def test_csv_errors_count_lines_across_quoted_multiline_fields_and_blank_lines(tmp_path):
    path = tmp_path / "p.csv"
    # line 1 header, line 2-3 one record (quoted newline), line 4 blank, line 5 the bad score
    path.write_text('prompt_a,prompt_b,score\n"a red\nbus",a car,1\n\na dog,a cat,9\n')
    with pytest.raises(ValueError, match=r"p\.csv, line 5: score '9' is not a number"):
        data.load_pairs_csv(path)
    path.write_text('prompt_a,prompt_b,score\n"a red\nbus",a car,1\n"x","y\n\nz",1,surplus\n')
    with pytest.raises(ValueError, match=r"p\.csv, line 4: malformed CSV: 4 fields, the header has 3"):
        data.load_pairs_csv(path)


def test_csv_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("prompt_a,prompt_b,score\na café,a bar,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8: save it as UTF-8 \(line 2 has the byte 0xe9\)"):
        data.load_pairs_csv(path)


# --- dependence: shared captions, caption-disjoint subsets and sampling ----------------------


def shared_table() -> pd.DataFrame:
    """Six pairs: p1/p2 share a text (up to case), p3/p4 share a CxC id, p5 and p6 share nothing."""
    rows = [("p1", "A dog", "a cat", None, None, 1.0), ("p2", "a  DOG", "a bus", None, None, 2.0),
            ("p3", "one", "two", cid(7), cid(8), 1.0), ("p4", "three", "four", cid(9), cid(7), 3.0),
            ("p5", "five", "six", "illustrative", "illustrative", 3.0),
            ("p6", "seven", "eight", "illustrative", "illustrative", 1.0)]
    return pd.DataFrame(rows, columns=["pair_id", "prompt_a", "prompt_b", "source_a", "source_b", "group"])


def shares_a_caption(table: pd.DataFrame) -> bool:
    """Brute force: does any caption (normalised text, or CxC id) occur in two pairs?"""
    seen: dict[str, str] = {}
    for row in table.drop_duplicates("pair_id").itertuples():
        keys = {data.normalise_text(row.prompt_a), data.normalise_text(row.prompt_b)}
        keys |= {s for s in (getattr(row, "source_a", None), getattr(row, "source_b", None))
                 if isinstance(s, str) and s.startswith("COCO_val2014:")}
        for k in keys:
            if seen.setdefault(k, row.pair_id) != row.pair_id:
                return True
    return False


def test_caption_sharing_counts_text_and_id_sharing_per_group():
    sharing = data.caption_sharing(shared_table())
    assert sharing.loc["all", ["pairs", "sharing_by_text", "sharing_by_id", "sharing"]].tolist() == [6, 2, 2, 4]
    assert sharing.loc[1.0, ["pairs", "sharing"]].tolist() == [3, 2]  # p1 (text), p3 (id); p6 alone
    assert sharing.loc[3.0, ["sharing_by_id", "sharing"]].tolist() == [1, 1]  # p4; the label is not an id
    assert sharing.loc["all", "share"] == pytest.approx(4 / 6)


def test_caption_disjoint_subset_shares_no_caption_and_is_greedy_in_round_robin_order():
    table = shared_table()
    assert shares_a_caption(table)
    assert data.round_robin_order(table).tolist() == ["p1", "p2", "p4", "p3", "p5", "p6"]
    subset = data.caption_disjoint_subset(table)
    assert not shares_a_caption(subset)
    # p1 (group 1) takes "a dog" before p2 (group 2), p4 (group 3, round 0) takes id 7 before p3 (round 1)
    assert subset["pair_id"].tolist() == ["p1", "p4", "p5", "p6"]
    reverse = data.caption_disjoint_subset(table.iloc[::-1])
    assert reverse["pair_id"].tolist() == ["p6", "p5", "p3", "p2"]
    # a draw column (the sampled order, carried into results) decides, whatever the rows' order
    drawn = table.assign(draw=[2, 0, 1, 1, 0, 0])
    assert data.caption_disjoint_subset(drawn)["pair_id"].tolist() == ["p2", "p3", "p5", "p6"]
    assert data.caption_disjoint_subset(drawn.sample(frac=1, random_state=1)).sort_values("pair_id")[
        "pair_id"].tolist() == ["p2", "p3", "p5", "p6"]
    # a results table: every row of a kept pair is kept, couplings included
    results = table.loc[table.index.repeat(3)].assign(path=["ot", "clip", "random"] * 6)
    assert data.caption_disjoint_subset(results)["pair_id"].tolist() == [p for p in subset["pair_id"] for _ in range(3)]


def test_caption_disjoint_subset_thins_every_group_alike():
    """10 groups × 150 pairs whose captions are drawn from one pool shared by all groups."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(1, 11) / 2, 150)
    words = [f"caption {i}" for i in range(1500)]
    pairs = [rng.choice(words, 2, replace=False) for _ in groups]
    table = pd.DataFrame({"pair_id": [f"p{i:04d}" for i in range(len(groups))], "group": groups,
                          "prompt_a": [a for a, _ in pairs], "prompt_b": [b for _, b in pairs]})
    kept = data.caption_disjoint_subset(table).groupby("group").size()
    assert not shares_a_caption(data.caption_disjoint_subset(table))
    assert len(kept) == 10 and kept.min() >= 0.7 * kept.max()  # 46 to 60
    # group after group, the first groups would take most captions
    greedy = table[data.greedy_disjoint(data.caption_key_sets(table))].groupby("group").size()
    assert greedy.iloc[0] > 3 * greedy.iloc[-1]


def test_caption_disjoint_subset_on_random_tables_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        words = [f"caption {i}" for i in range(12)]
        rows = [(f"p{i}", *rng.choice(words, 2, replace=False), 1.0) for i in range(15)]
        table = pd.DataFrame(rows, columns=["pair_id", "prompt_a", "prompt_b", "group"])
        subset = data.caption_disjoint_subset(table)
        assert not shares_a_caption(subset)
        # maximal: every left-out pair shares a caption with a kept pair
        for row in table[~table["pair_id"].isin(subset["pair_id"])].itertuples():
            assert shares_a_caption(pd.concat([subset, table[table["pair_id"] == row.pair_id]]))


def cxc_with_shared_captions(n: int, seed: int = 0) -> tuple[pd.DataFrame, dict[int, str]]:
    """``n`` CxC rows drawing both sentids from ``n // 2`` captions, so captions repeat."""
    rng = np.random.default_rng(seed)
    ids = np.array([rng.choice(n // 2, 2, replace=False) for _ in range(n)])
    cxc = pd.DataFrame({"caption1": [cid(a) for a in ids[:, 0]], "caption2": [cid(b) for b in ids[:, 1]],
                        "agg_score": rng.integers(0, 501, n) / 100, "sampling_method": "c2c_isim"})
    cxc = cxc.drop_duplicates(["caption1", "caption2"])
    return cxc, {i: f"caption {i}" for i in range(n // 2)}


def test_disjoint_sampling_shares_no_caption_and_reports_what_each_group_lost():
    cxc, captions = cxc_with_shared_captions(1000)  # 500 captions: at most 250 disjoint pairs
    plain = build_quietly(cxc, captions, per_group=40, seed=0)
    assert data.caption_sharing(plain).loc["all", "sharing"] > 0
    with pytest.warns(UserWarning, match="caption-disjoint pairs in group"):
        disjoint = data.build_pairs(cxc, captions, per_group=40, seed=0, disjoint_captions=True)
    assert not shares_a_caption(disjoint)
    assert data.caption_sharing(disjoint).loc["all", "sharing"] == 0
    report = data.pairs_report(disjoint)
    assert list(report.columns) == ["available", "identical_dropped", "skipped_shared", "sampled"]
    assert (report["sampled"] == disjoint.groupby("group").size().reindex(report.index, fill_value=0)).all()
    assert (report["skipped_shared"] > 0).any() and (report["sampled"] <= 40).all()
    assert report["sampled"].sum() < len(plain)
    # reproducible, and the same seeded order: a group's pairs come in the plain sample's order
    pd.testing.assert_frame_equal(disjoint, build_quietly(cxc, captions, per_group=40, seed=0, disjoint_captions=True))
    first = disjoint[disjoint["group"] == 0.5]["pair_id"]
    order = build_quietly(cxc, captions, per_group=10_000, seed=0)
    order = order[order["group"] == 0.5]["pair_id"].tolist()
    assert [order.index(p) for p in first] == sorted(order.index(p) for p in first)


def test_disjoint_sampling_without_shared_captions_equals_plain_sampling():
    cxc, captions = synthetic_cxc(800)  # every caption in one pair only
    plain = build_quietly(cxc, captions, per_group=30, seed=3)
    disjoint = build_quietly(cxc, captions, per_group=30, seed=3, disjoint_captions=True)
    pd.testing.assert_frame_equal(plain, disjoint)
    assert (data.pairs_report(disjoint)["skipped_shared"] == 0).all()


CXC_DIR = Path(os.environ.get("OTINTERP_CXC_DIR", Path(__file__).resolve().parents[3] / "shared" / "cxc"))


@pytest.mark.skipif(not (CXC_DIR / "sts_val.csv").is_file(), reason=f"CxC STS files not in {CXC_DIR}")
def test_disjoint_sampling_on_the_real_cxc_files_reports_per_group_counts():
    cxc = data.load_cxc([CXC_DIR / "sts_val.csv", CXC_DIR / "sts_test.csv"])
    ids = pd.concat([cxc["caption1"], cxc["caption2"]]).unique()
    captions = {int(i.rsplit(":", 1)[1]): f"text of {i}" for i in ids}  # the text is not shipped: ids stand in
    plain = build_quietly(cxc, captions, per_group=1000, seed=0)
    sharing = data.caption_sharing(plain)
    assert sharing.loc["all", "sharing_by_id"] == sharing.loc["all", "sharing_by_text"] > 0
    disjoint = build_quietly(cxc, captions, per_group=1000, seed=0, disjoint_captions=True)
    report = data.pairs_report(disjoint)
    assert list(report.index) == data.all_groups().tolist()
    assert report["available"].sum() == len(cxc)
    assert (report["sampled"] == disjoint.groupby("group").size()).all()
    assert (report["sampled"] > 0).all() and report["skipped_shared"].sum() > 0
    assert data.caption_sharing(disjoint).loc["all", "sharing"] == 0


# --- balanced pilots ---------------------------------------------------------------------------


def test_balanced_subset_takes_round_robin_across_groups_in_table_order():
    cxc, captions = synthetic_cxc(2000)
    pairs = build_quietly(cxc, captions, per_group=30, seed=0)
    subset = data.balanced_subset(pairs, 20)
    assert subset.groupby("group").size().tolist() == [2] * 10
    assert subset["pair_id"].tolist() == pairs.groupby("group").head(2)["pair_id"].tolist()
    assert data.balanced_subset(pairs, 23).groupby("group").size().tolist() == [3, 3, 3] + [2] * 7
    assert len(data.balanced_subset(pairs, 10_000)) == len(pairs)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        data.balanced_subset(pairs, 0)
