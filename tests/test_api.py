"""The library calls: otinterp.interpolate and otinterp.mix on a pipeline object, no profile."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import otinterp
from otinterp import experiment, params
from otinterp.barycenter import mix_conditioning
from otinterp.families import family_of
from otinterp.render import render

A, B = "a photo of a cat", "a red double decker bus"
SMALL = {"steps": 3, "height": 32, "width": 32}


def test_import_otinterp_stays_light():
    code = "import sys, otinterp; print(any(m in sys.modules for m in ('torch', 'diffusers', 'pandas')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"
    assert otinterp.interpolate is otinterp.api.interpolate and otinterp.mix is otinterp.api.mix
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        otinterp.nothing


def test_interpolate_equals_the_experiments_images_bitwise(tmp_path, pipe, lpips_model):
    """The experiment's strip PNG of a pair and the library call's images, same settings: equal bytes."""
    pairs = pd.DataFrame({"pair_id": ["pair-cat"], "prompt_a": [A], "prompt_b": [B], "score": [2.0],
                          "group": [2.0]})
    P = params.make(n_intervals=3, batch_size=8, lpips_backbone="random", strip_pair_ids=["pair-cat"], **SMALL)
    experiment.run(P, pairs, tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True)
    for path in ("ot", "clip", "random"):
        got = otinterp.interpolate(pipe, A, B, n=3, path=path, seed=0, batch_size=8, lpips=lpips_model,
                                   pair_id="pair-cat", **SMALL)
        assert len(got.images) == 4 and got.images[0].size == (32, 32)
        strip = np.asarray(Image.open(tmp_path / "strips" / f"pair-cat_{path}.png"))
        assert np.array_equal(np.concatenate([np.asarray(im) for im in got.images], axis=1), strip), path
    results = experiment.load_results(tmp_path, pairs, params=P).set_index("path")
    assert got.measures["ppl"] == pytest.approx(results.loc["random", "ppl"], rel=1e-6)
    assert got.measures["intervals"] == 3
    assert got.cost == pytest.approx(results.loc["random", "cost"]) and got.w2 == pytest.approx(results.loc["ot", "w2"])


@pytest.mark.parametrize("spec", ["tiny", "sd21-tiny", "sdxl-tiny", "sd3-tiny", "flux-tiny"])
def test_interpolate_and_mix_on_every_family(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    size = {"steps": 2, "height": 32, "width": 32}
    got = otinterp.interpolate(pipe, A, B, n=2, lpips=None, **size)
    assert len(got.images) == 3 and got.measures is None and got.cost == pytest.approx(got.w2)
    image = otinterp.mix(pipe, [A, B, "a green field"], [0.5, 0.25, 0.25], seed=1, **size)
    assert image.size == (32, 32)
    # the same mixture rendered by hand from the experiment's renderer
    family = family_of(pipe)
    cond = family.encode(pipe, [A, B, "a green field"])
    mixed = mix_conditioning([cond[i] for i in range(3)], [0.5, 0.25, 0.25])
    by_hand = render(pipe, mixed.tokens[None], pooled=None if mixed.pooled is None else mixed.pooled[None], seed=1,
                     batch_size=1, guidance=7.5, uncond=family.unconditional(pipe), disable=True, **size)
    expected = (by_hand[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(image), expected)


def test_mixing_two_prompts_at_the_ends_is_the_prompt_itself(pipe):
    ends = otinterp.interpolate(pipe, A, B, n=1, lpips=None, **SMALL).images
    assert np.array_equal(np.asarray(otinterp.mix(pipe, [A, B], [1.0, 0.0], **SMALL)), np.asarray(ends[0]))


def test_bad_arguments_are_named(pipe):
    with pytest.raises(ValueError, match="unknown path 'linear'"):
        otinterp.interpolate(pipe, A, B, path="linear")
    with pytest.raises(ValueError, match="n must be >= 1"):
        otinterp.interpolate(pipe, A, B, n=0)
    with pytest.raises(ValueError, match="lpips must be"):
        otinterp.interpolate(pipe, A, B, n=1, lpips="vgg", **SMALL)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, pipe):
    """The README's example, with only the pretrained model swapped for the tiny one (no download here)."""
    import re
    from pathlib import Path

    import diffusers

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Use it in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "otinterp.interpolate(pipe" in code and ".save(\"morph.gif\"" in code and len(code.splitlines()) <= 12
    loaded = SimpleNamespace(to=lambda *args, **kwargs: pipe)  # from_pretrained(...).to("cuda") is the tiny pipe
    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", lambda *args, **kwargs: loaded)
    monkeypatch.chdir(tmp_path)
    fast = "steps=2, height=32, width=32"
    small = (code.replace("n=16, path=\"ot\", seed=0)", f"n=2, path=\"ot\", seed=0, {fast}, lpips=None)")
             .replace("[0.5, 0.25, 0.25], seed=0)", f"[0.5, 0.25, 0.25], seed=0, {fast})"))
    assert small.count(fast) == 2
    exec(compile(small, "README", "exec"), {"__name__": "readme"})
    with Image.open(tmp_path / "morph.gif") as gif, Image.open(tmp_path / "mix.png") as mix:
        assert gif.n_frames == 4 and mix.size == (32, 32)
