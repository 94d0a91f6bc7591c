"""`python -m otinterp.params --check` reads the input files' contents, fast, before any notebook runs."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = "prompt_a,prompt_b,score\n"
CXC_HEADER = "caption1,caption2,agg_score,sampling_method\n"
CXC_ROW = "COCO_val2014:sentid:{},COCO_val2014:sentid:{},{},c2c_isim\n"
CAPTIONS = {"images": [{"sentences": [{"sentid": 1, "raw": "a cat on a mat"}, {"sentid": 2, "raw": "a dog"}]}]}


def check(tmp_path, profile_text):
    """Run the check on a profile with ``profile_text``; return the process and its CPU seconds."""
    profile = tmp_path / "mine.yaml"
    profile.write_text(profile_text)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "otinterp", "check", "--profile", str(profile)], capture_output=True,
                          text=True, env={**os.environ, "OTINTERP_RUNS": str(tmp_path / "runs")})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def csv_profile(tmp_path, content: bytes) -> str:
    (tmp_path / "pairs.csv").write_bytes(content)
    return f"pairs_source: csv\npairs_csv: {tmp_path / 'pairs.csv'}\n"


def cxc_profile(tmp_path, cxc: str, captions: str | None) -> str:
    (tmp_path / "sts_val.csv").write_text(cxc)
    if captions is not None:
        (tmp_path / "dataset_coco.json").write_text(captions)
    return (f"pairs_source: cxc\ncxc_paths: [{tmp_path / 'sts_val.csv'}]\n"
            f"karpathy_path: {tmp_path / 'dataset_coco.json'}\n")


def assert_fails_in_one_line(tmp_path, text, message):
    proc, cpu = check(tmp_path, text)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout
    assert not (tmp_path / "runs").exists(), "a failed check wrote a run folder"
    assert cpu < 1.0, f"the check took {cpu:.2f} s of CPU"


@pytest.mark.parametrize("content, message", [
    (HEADER.encode() + b"a cat,a dog,high\n", "pairs.csv, line 2: score 'high' is not a number in [0, 5]"),
    (HEADER.encode() + b"a cat,a dog,1\na bus,  ,4.5\n", "pairs.csv, line 3: empty prompt_b"),
    (b"prompt_a,score\na cat,1\n", "pairs.csv: missing column(s) 'prompt_b'"),
    (HEADER.encode() + "a café,a bar,1\n".encode("latin-1"), "pairs.csv is not UTF-8: save it as UTF-8 (line 2"),
    (b"pair_id,prompt_a,prompt_b,score\nx,a cat,a dog,1\nx,a bus,a car,2\n", "pair_id 'x' appears 2 times"),
], ids=["score", "empty-prompt", "missing-column", "not-utf8", "duplicate-id"])
def test_a_bad_csv_fails_the_check_in_one_line(tmp_path, content, message):
    assert_fails_in_one_line(tmp_path, csv_profile(tmp_path, content), message)


def test_a_missing_csv_names_the_readme_section(tmp_path):
    profile = f"pairs_source: csv\npairs_csv: {tmp_path / 'nope.csv'}\n"
    assert_fails_in_one_line(tmp_path, profile, "nope.csv does not exist; see the README, 'Your own prompt pairs'")


@pytest.mark.parametrize("cxc, captions, message", [
    (CXC_HEADER + CXC_ROW.format(1, 2, "9"), json.dumps(CAPTIONS), "sts_val.csv, line 2: agg_score '9' is not"),
    (CXC_HEADER + CXC_ROW.format(1, 2, "3.5"), None, "dataset_coco.json does not exist; run otinterp.data.fetch"),
    (CXC_HEADER + CXC_ROW.format(1, 2, "3.5"), "{not json", "dataset_coco.json: not valid JSON"),
    (CXC_HEADER + CXC_ROW.format(1, 7, "3.5"), json.dumps(CAPTIONS), "COCO_val2014:sentid:7"),
], ids=["score", "no-captions", "captions-not-json", "unknown-caption"])
def test_bad_cxc_files_fail_the_check_in_one_line(tmp_path, cxc, captions, message):
    assert_fails_in_one_line(tmp_path, cxc_profile(tmp_path, cxc, captions), message)


def test_good_inputs_pass_and_write_nothing(tmp_path):
    for text in (csv_profile(tmp_path, HEADER.encode() + b"a cat,a dog,1\n"),
                 cxc_profile(tmp_path, CXC_HEADER + CXC_ROW.format(1, 2, "3.5"), json.dumps(CAPTIONS))):
        proc, _ = check(tmp_path, text)
        assert proc.returncode == 0 and "profile mine:" in proc.stdout, proc.stderr
    assert not (tmp_path / "runs").exists()
