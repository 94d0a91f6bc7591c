"""Downloading the paper profile's data (CxC STS files and Karpathy's captions), verified."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from otinterp.data.cxc import _CXC_FILES, _CXC_URL, _KARPATHY_URL, _by_hand, _zip_member, load_karpathy_captions

__all__ = ["fetch_paper_data"]

def fetch_paper_data(dest: str | os.PathLike = "data", *, timeout: float = 10.0) -> dict[str, Path]:
    """Download the paper profile's data into ``dest``, verifying what can be verified.

    Writes ``dest/cxc/sts_val.csv`` and ``dest/cxc/sts_test.csv`` (Crisscrossed Captions, checked
    against their known size and SHA-256) and ``dest/dataset_coco.json`` (extracted from
    Karpathy's ``caption_datasets.zip``, checked to load with :func:`load_karpathy_captions`).
    Files already present (the CxC ones with the right checksum) are kept. Each file is
    downloaded into a temporary folder inside ``dest`` and moved into place with ``os.replace``.

    Parameters
    ----------
    dest : path
        The data folder (the paper profile reads ``data/``).
    timeout : float
        Seconds to wait for the network before giving up.

    Returns
    -------
    paths : dict of str to Path
        ``"sts_val.csv"``, ``"sts_test.csv"``, ``"dataset_coco.json"`` to their paths.

    Raises
    ------
    ConnectionError
        At the first download that fails (offline), saying what to download and where to put it.
    ValueError
        For a download of the wrong size or checksum, or a zip without a valid dataset_coco.json
        (nothing is written).
    """
    dest = Path(dest)
    paths = {name: dest / "cxc" / name for name in _CXC_FILES} | {"dataset_coco.json": dest / "dataset_coco.json"}
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        for name, (size, sha256) in _CXC_FILES.items():
            if paths[name].is_file() and _sha256(paths[name]) == sha256:
                continue
            url = _CXC_URL.format(name)
            got = _download(url, Path(tmp) / name, timeout, dest)
            got_size, got_sha = got.stat().st_size, _sha256(got)
            if (got_size, got_sha) != (size, sha256):
                raise ValueError(f"{url}: downloaded {got_size} bytes with SHA-256 {got_sha}, "
                                 f"expected {size} bytes with SHA-256 {sha256}")
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, paths[name])
        if not paths["dataset_coco.json"].is_file():
            archive = _download(_KARPATHY_URL, Path(tmp) / "caption_datasets.zip", timeout, dest)
            load_karpathy_captions(archive)
            coco = Path(tmp) / "dataset_coco.json"
            with zipfile.ZipFile(archive) as zf, zf.open(_zip_member(zf, archive)) as src, coco.open("wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(coco, paths["dataset_coco.json"])
    return paths

def _download(url: str, path: Path, timeout: float, dest: Path) -> Path:
    """``url`` saved to ``path``; a network failure is a ConnectionError saying what to put in ``dest``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, path.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise ConnectionError(f"could not download {url} ({err}); {_by_hand(dest)}") from err
    return path

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
