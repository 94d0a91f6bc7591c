"""The project cites the paper correctly and carries its own definitions."""

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ARXIV = "arXiv:2511.12757"


def tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".ipynb", ".yaml", ".cff", ".sh", ".toml", ".txt", ".csv"} and path.is_file():
            yield name, path.read_text(encoding="utf-8", errors="replace")


def test_no_invented_citation_and_no_pointer_outside_the_repository():
    # Spelled in pieces so that this file does not match itself.
    wrong = [re.compile("Fu" + r" et al"), re.compile("Fu" + ", Hagen"), re.compile(r"\.\./" + "shared"),
             re.compile("SPEC" + r" \d")]
    hits = [f"{name}: {pattern.pattern}" for name, text in tracked_text_files() for pattern in wrong
            if pattern.search(text)]
    assert not hits


def test_readme_and_citation_file_cite_the_paper():
    readme = (ROOT / "README.md").read_text()
    assert ARXIV in readme and "Karris" in readme and "eprint        = {2511.12757}" in readme
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    (paper,) = cff["references"]
    assert [a["family-names"] for a in paper["authors"]] == ["Karris", "Durell", "Flores", "Emerson"]
    assert paper["year"] == 2025 and paper["title"].startswith("Which Way from B to A")


def test_every_cited_section_of_the_definitions_exists():
    sections = set(re.findall(r"^## §(\d+) ", (ROOT / "docs" / "definitions.md").read_text(), flags=re.M))
    cited = set()
    for name, text in tracked_text_files():
        for match in re.finditer(r"definitions\.md §(\d+)(?:[–-]§(\d+))?", text):
            cited.update(g for g in match.groups() if g)
    assert cited and cited <= sections, sorted(cited - sections)


def test_every_readme_section_a_message_names_exists():
    # Messages and comments point to a section as: see the README, then the heading in quotes.
    headings = set(re.findall(r"^#+ (.+?)\s*$", (ROOT / "README.md").read_text(), flags=re.M))
    named = {(name, match.group(2)) for name, text in tracked_text_files()
             if not name.startswith(("README", "tests/"))
             for match in re.finditer(r"README(?:\.md)?[,\s(]+(['\"])([^'\"\n]+)\1", text)}
    assert named and not {section for _, section in named} - headings, sorted(named)
