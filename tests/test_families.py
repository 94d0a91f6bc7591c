"""Every model family on its tiny offline pipeline: the real classes, the token set and global vector
as the pipeline computes them, invariance of the denoiser and the image, loading and schedulers."""

import huggingface_hub.constants
import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from otinterp.families import FAMILIES, Conditioning, family_for_class_name, family_of
from otinterp.invariance import ENCODER_COMPARISON, check_images, check_text_encoder, check_unet, row_scopes
from otinterp.models import OFFLINE_SPECS, load_pipeline
from otinterp.offline import t5_standin_tokenizer
from otinterp.render import render

#: Relative float32 tolerance of the invariance (measured worst on these models: ~3e-6).
RTOL = 1e-5

PROMPTS = ["a photo of a cat", "a red double decker bus on a city street"]
OPTIONS = dict(seed=0, steps=3, guidance=5.0, height=64, width=64, batch_size=2, disable=True)

#: spec -> (pipeline class, family, token-set shape (L, D), global-vector width or None)
TINY = {
    "tiny": (StableDiffusionPipeline, "sd", (77, 32), None),
    "sd21-tiny": (StableDiffusionPipeline, "sd", (77, 48), None),
    "sdxl-tiny": (StableDiffusionXLPipeline, "sdxl", (77, 64), 32),
    "sd3-tiny": (StableDiffusion3Pipeline, "sd3", (77 + 256, 128), 64),
    "flux-tiny": (FluxPipeline, "flux", (256, 64), 32),
}

@pytest.fixture
def offline(monkeypatch):
    """Never wait on the network, as on a cluster's compute node with ``HF_HUB_OFFLINE=1``."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("spec", TINY)
def test_tiny_spec_is_the_family_s_real_pipeline(spec, tiny_pipe):
    pipeline_class, name, shape, pooled_width = TINY[spec]
    pipe = tiny_pipe(spec)
    assert type(pipe) is pipeline_class
    assert family_of(pipe).name == name
    cond = family_of(pipe).encode(pipe, PROMPTS + [""])
    assert cond.tokens.shape == (3, *shape)
    assert (cond.pooled is None) if pooled_width is None else cond.pooled.shape == (3, pooled_width)
    assert torch.isfinite(cond.tokens).all()


def test_every_offline_spec_is_tested():
    assert set(OFFLINE_SPECS) == set(TINY) | {"sd15-random"}


@pytest.mark.parametrize("spec", TINY)
def test_encoding_equals_the_pipeline_s_encode_prompt(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    cond = family_of(pipe).encode(pipe, PROMPTS, batch_size=1)
    name = family_of(pipe).name
    if name == "sd":
        tokens, pooled = pipe.encode_prompt(PROMPTS, "cpu", 1, False)[0], None
    elif name == "sdxl":
        out = pipe.encode_prompt(PROMPTS, device="cpu", do_classifier_free_guidance=False)
        tokens, pooled = out[0], out[2]
    elif name == "sd3":
        out = pipe.encode_prompt(PROMPTS, PROMPTS, PROMPTS, device="cpu", do_classifier_free_guidance=False)
        tokens, pooled = out[0], out[2]
    else:
        tokens, pooled, _ = pipe.encode_prompt(PROMPTS, PROMPTS, device="cpu", max_sequence_length=256)
    # batch 1 against batch 2: float32 rounding only (measured at most 4e-6, in T5's rows)
    torch.testing.assert_close(cond.tokens, tokens, rtol=0, atol=1e-5)
    if pooled is not None:
        torch.testing.assert_close(cond.pooled, pooled, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", TINY)
def test_unconditional_input_follows_the_pipeline(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    family = family_of(pipe)
    uncond = family.unconditional(pipe)
    if family.name == "flux":
        assert uncond is None  # guidance-distilled: no unconditional branch
    elif family.name == "sdxl":
        assert not uncond.tokens.any() and not uncond.pooled.any()  # force_zeros_for_empty_prompt
    else:
        empty = family.encode(pipe, [""])
        assert torch.equal(uncond.tokens, empty.tokens)
        assert uncond.tokens.abs().max() > 0.1


@pytest.mark.parametrize("spec", TINY)
def test_fixed_rows_are_the_rows_every_prompt_shares(spec, tiny_pipe):
    """The leading ``fixed_rows`` rows (CLIP's BOS) are the same for every prompt; the next row is a word's."""
    pipe = tiny_pipe(spec)
    family = family_of(pipe)
    assert family.fixed_rows == (0 if family.name == "flux" else 1)
    tokens = family.encode(pipe, [PROMPTS[0], "two dogs", ""]).tokens  # different first words
    k = family.fixed_rows
    assert torch.equal(tokens[0, :k], tokens[1, :k]) and torch.equal(tokens[0, :k], tokens[2, :k])
    assert (tokens[0, k] - tokens[1, k]).abs().max() > 1e-3


@pytest.mark.parametrize("spec", ["sdxl-tiny", "sd3-tiny"])
def test_pooled_families_pass_tokens_and_global_vector_with_their_negatives(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    family = family_of(pipe)
    cond = family.encode(pipe, PROMPTS)
    uncond = family.unconditional(pipe).expand(2)
    assert family.call_kwargs(pipe, cond, None, 5.0) == {"prompt_embeds": cond.tokens, "pooled_prompt_embeds": cond.pooled}
    kwargs = family.call_kwargs(pipe, cond, uncond, 5.0)
    assert kwargs["negative_prompt_embeds"] is uncond.tokens and kwargs["negative_pooled_prompt_embeds"] is uncond.pooled
    assert kwargs["prompt_embeds"] is cond.tokens and kwargs["pooled_prompt_embeds"] is cond.pooled


@pytest.mark.parametrize("spec", TINY)
def test_denoiser_and_image_are_invariant_to_token_row_order(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    cond = family_of(pipe).encode(pipe, PROMPTS)
    for rows in row_scopes(pipe):
        table = check_unet(pipe, cond.tokens, pooled=cond.pooled, n_perms=2, timesteps=[999, 500, 1], seed=0, rows=rows)
        assert len(table) == 2 * 2 * 3
        assert (table.scale > 1e-2).all(), rows  # outputs are not trivially zero
        assert table.rel_max_diff.max() < RTOL, rows
        images, pictures = check_images(pipe, PROMPTS[:1], n_perms=1, seed=0, steps=3, guidance=5.0,
                                        height=64, width=64, rows=rows)
        assert pictures.shape == (1, 2, 3, 64, 64)
        assert images.rel_max_diff.max() < RTOL, rows


def test_sd3_block_permutations_move_rows_only_inside_their_block(tiny_pipe):
    pipe = tiny_pipe("sd3-tiny")
    assert row_scopes(pipe) == ["all", "CLIP", "T5"]
    assert {name: rows for name, (rows, _) in family_of(pipe).blocks(pipe).items()} == {
        "CLIP": slice(0, 77), "T5": slice(77, 333)
    }
    cond = family_of(pipe).encode(pipe, PROMPTS[:1])
    # Not vacuous: the image does depend on each block's content.
    for rows in (slice(0, 77), slice(77, 333)):
        changed = cond.tokens.clone()
        changed[:, rows] = changed[:, rows].flip(-1)
        a = render(pipe, cond.tokens, pooled=cond.pooled, **OPTIONS)
        b = render(pipe, changed, pooled=cond.pooled, **OPTIONS)
        assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("spec", TINY)
def test_text_encoder_is_not_token_permutation_equivariant(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    table = check_text_encoder(pipe, PROMPTS[1], seed=0)
    encoder = table[table.comparison == ENCODER_COMPARISON]
    assert set(encoder.block) == set(family_of(pipe).blocks(pipe))
    # Measured: CLIP blocks 0.3-0.8; the random tiny T5s (order only through a small relative
    # position bias) 0.01-0.02, and a Flux image moves by 7e-5, 700 times the float noise.
    assert (encoder.rel_max_diff > 100 * RTOL).all()
    denoiser = table.set_index("comparison").rel_max_diff
    assert denoiser["UNet: E[π] vs E"] < RTOL
    assert denoiser["UNet: E(tokens[π]) vs E"] > 100 * max(denoiser["UNet: E[π] vs E"], 1e-7)


@pytest.mark.parametrize("spec", TINY)
def test_saved_pipeline_loads_offline_and_renders_the_same_image(spec, tmp_path, offline, tiny_pipe):
    pipe = tiny_pipe(spec)
    pipe.save_pretrained(tmp_path / spec)
    loaded = load_pipeline(str(tmp_path / spec))
    assert type(loaded) is type(pipe)
    cond = family_of(pipe).encode(pipe, PROMPTS[:1])
    again = family_of(loaded).encode(loaded, PROMPTS[:1])
    assert torch.equal(cond.tokens, again.tokens)
    # equal up to float32 rounding (measured: bitwise for SD, 6e-7 for Flux)
    torch.testing.assert_close(render(pipe, cond.tokens, pooled=cond.pooled, **OPTIONS),
                               render(loaded, again.tokens, pooled=again.pooled, **OPTIONS), rtol=0, atol=1e-5)


@pytest.mark.parametrize("hub_id, title", [
    ("otinterp-tests/no-such-model", "Stable Diffusion 1.x/2.x"),
    ("otinterp-tests/no-such-sdxl-model", "SDXL"),
    ("stabilityai/stable-diffusion-3.5-medium", "Stable Diffusion 3"),
    ("black-forest-labs/FLUX.1-schnell", "Flux"),
])
def test_unknown_hub_id_offline_says_how_to_download_and_names_the_family(hub_id, title, offline):
    with pytest.raises(OSError, match=rf"could not load model '{hub_id}' \(by its name a {title} model.*hf download {hub_id}"):
        load_pipeline(hub_id)


@pytest.mark.parametrize("scheduler, expected", [
    ("default", "PNDMScheduler"), ("ddim", "DDIMScheduler"),
    ("dpm-solver++", "DPMSolverMultistepScheduler"), ("euler", "EulerDiscreteScheduler"),
])
def test_every_scheduler_choice_renders(scheduler, expected):
    pipe = load_pipeline("tiny", scheduler=scheduler)
    assert type(pipe.scheduler).__name__ == expected
    if scheduler == "dpm-solver++":
        assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # built from the model's own config
    cond = family_of(pipe).encode(pipe, PROMPTS)
    images = render(pipe, cond.tokens, **OPTIONS)
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()


def test_scheduler_errors():
    with pytest.raises(ValueError, match="unknown scheduler 'lms'"):
        load_pipeline("tiny", scheduler="lms")
    with pytest.raises(ValueError, match="Flux is a flow-matching model.*use scheduler: default"):
        load_pipeline("flux-tiny", scheduler="euler")


def test_single_file_needs_an_existing_checkpoint_and_config_only_with_one(tmp_path):
    with pytest.raises(ValueError, match="config is only for a checkpoint file"):
        load_pipeline("tiny", config=tmp_path)
    with pytest.raises(FileNotFoundError, match="model checkpoint .*sdxl.safetensors does not exist"):
        load_pipeline(str(tmp_path / "sdxl.safetensors"), config=tmp_path)


def test_render_checks_the_global_vector(tiny_pipe):
    pipe = tiny_pipe("sdxl-tiny")
    cond = family_of(pipe).encode(pipe, PROMPTS)
    with pytest.raises(ValueError, match="SDXL needs the global vector"):
        render(pipe, cond.tokens, **OPTIONS)
    with pytest.raises(ValueError, match=r"pooled must have shape \(2, P\)"):
        render(pipe, cond.tokens, pooled=cond.pooled[:1], **OPTIONS)
    with pytest.raises(ValueError, match="Flux is guidance-distilled"):
        flux = tiny_pipe("flux-tiny")
        c = family_of(flux).encode(flux, PROMPTS)
        render(flux, c.tokens, pooled=c.pooled, uncond=c[:1], **OPTIONS)


def test_render_with_explicit_unconditional_equals_the_default(tiny_pipe):
    pipe = tiny_pipe("sdxl-tiny")
    family = family_of(pipe)
    cond = family.encode(pipe, PROMPTS)
    default = render(pipe, cond.tokens, pooled=cond.pooled, **OPTIONS)
    explicit = render(pipe, cond.tokens, pooled=cond.pooled, uncond=family.unconditional(pipe), **OPTIONS)
    assert torch.equal(default, explicit)
    assert render(pipe, cond.tokens, pooled=cond.pooled, uncond=cond[:1], **OPTIONS).sub(default).abs().max() > 1e-3


def test_family_from_class_name():
    assert family_for_class_name("StableDiffusionXLPipeline") is FAMILIES["sdxl"]
    with pytest.raises(ValueError, match="unsupported diffusers pipeline 'KandinskyPipeline'.*FluxPipeline \\(flux\\)"):
        family_for_class_name("KandinskyPipeline")


def test_conditioning_batch_helpers():
    cond = Conditioning(torch.arange(24.0).reshape(2, 3, 4), torch.ones(2, 5))
    assert len(cond) == 2 and cond[1:].tokens.shape == (1, 3, 4)
    permuted = cond.permute_rows(torch.tensor([2, 0, 1]))
    assert torch.equal(permuted.tokens, cond.tokens[:, [2, 0, 1]]) and permuted.pooled is cond.pooled
    assert cond[:1].expand(4).tokens.shape == (4, 3, 4)


def test_t5_standin_tokenizer_is_t5_shaped_and_cached(tmp_path):
    tokenizer = t5_standin_tokenizer(tmp_path / "t5")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer(["a photo of a cat"], padding="max_length", max_length=16).input_ids[0]
    assert len(ids) == 16 and 1 in ids and ids[-1] == 0
    stamp = (tmp_path / "t5" / "tokenizer_config.json").stat().st_mtime_ns
    assert t5_standin_tokenizer(tmp_path / "t5")("a photo of a cat").input_ids == ids[: ids.index(1) + 1]
    assert (tmp_path / "t5" / "tokenizer_config.json").stat().st_mtime_ns == stamp


def test_single_file_takes_its_family_and_configuration_from_the_config_folder(tmp_path, offline, monkeypatch,
                                                                              tiny_pipe):
    pipe = tiny_pipe("sdxl-tiny")
    pipe.save_pretrained(tmp_path / "config")
    (tmp_path / "model.safetensors").write_bytes(b"")
    calls = []

    def from_single_file(path, **options):
        calls.append((path, options))
        return pipe

    monkeypatch.setattr(StableDiffusionXLPipeline, "from_single_file", from_single_file)
    assert load_pipeline(str(tmp_path / "model.safetensors"), config=tmp_path / "config") is pipe
    path, options = calls[0]
    assert path == str(tmp_path / "model.safetensors")
    assert options["config"] == str(tmp_path / "config") and options["local_files_only"] is True


def test_single_file_without_the_weights_is_a_clear_offline_error(tmp_path, offline, tiny_pipe):
    from safetensors.torch import save_file

    pipe = tiny_pipe("tiny")
    pipe.save_pretrained(tmp_path / "config")
    save_file({"model.diffusion_model.out.weight": torch.zeros(1)}, tmp_path / "unet-only.safetensors")
    with pytest.raises(OSError, match=r"could not load the checkpoint file .*unet-only.safetensors with "
                                      r"StableDiffusionPipeline.from_single_file \(Stable Diffusion 1.x/2.x\)"):
        load_pipeline(str(tmp_path / "unet-only.safetensors"), config=tmp_path / "config")


@pytest.mark.parametrize("spec", TINY)
def test_content_rows_follow_the_tokenizers_attention_mask(spec, tiny_pipe):
    pipe = tiny_pipe(spec)
    family = family_of(pipe)
    mask = family.content_rows(pipe, ["a photo of a cat", ""])
    assert mask.shape == (2, family.encode(pipe, [""]).tokens.shape[1]) and mask.dtype == torch.bool
    for rows, names in family.blocks(pipe).values():
        block = mask[:, rows]
        # content first, then padding, in every block; the longer prompt has more content
        assert (block.int().diff(dim=1) <= 0).all()
        assert block[0].sum() > block[1].sum()
        ids = getattr(pipe, names[0])(["a photo of a cat"]).input_ids[0]
        assert block[0].sum() == min(len(ids), rows.stop - rows.start)


BOS, EOS = 49406, 49407
LONG = " ".join(f"word{i}" for i in range(100))  # 100 words: far over 77 tokens


def test_sd_tokenization_pads_with_eos_and_truncates_with_a_warning_naming_the_prompt(pipe, recwarn):
    family = family_of(pipe)
    ids = family.tokenize(pipe, ["a photo of a cat", ""])["tokenizer"]
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]  # short prompts do not warn
    assert ids.shape == (2, 77) and ids.dtype == torch.int64
    assert ids[0].tolist() == [BOS, 320, 1125, 539, 320, 2368, EOS] + [EOS] * 70
    assert ids[1].tolist() == [BOS] + [EOS] * 76
    with pytest.warns(UserWarning, match=r"1 prompt\(s\) longer than 77 tokens truncated.*'word0 word1 word2"):
        ids = family.tokenize(pipe, ["a photo of a cat", LONG])["tokenizer"]
    full = pipe.tokenizer(LONG).input_ids
    assert len(full) > 77 and ids[1].tolist() == full[:76] + [EOS]


def test_sd_encoding_of_empty_and_over_long_prompts_equals_encode_prompt(pipe):
    prompts = ["a photo of a cat", "", LONG]
    with pytest.warns(UserWarning, match="truncated"):
        tokens = family_of(pipe).encode(pipe, prompts).tokens
    expected, negative = pipe.encode_prompt(prompts, pipe.device, 1, do_classifier_free_guidance=True)
    assert tokens.dtype == pipe.text_encoder.dtype and tokens.device == pipe.device
    assert torch.equal(tokens, expected)
    assert torch.equal(family_of(pipe).unconditional(pipe).tokens, negative[:1])


def test_bad_prompts_are_clear_errors(pipe):
    family = family_of(pipe)
    with pytest.raises(TypeError, match="not one string: 'a cat'; wrap it in a list"):
        family.encode(pipe, "a cat")
    with pytest.raises(ValueError, match="no prompts given"):
        family.encode(pipe, [])
    with pytest.raises(TypeError, match=r"prompts must be strings, got None \(NoneType\)"):
        family.encode(pipe, ["a cat", None])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        family.encode(pipe, ["a cat"], batch_size=0)
    with pytest.raises(ValueError, match=r"token ids must be a 2-D .* got shape \(77,\)"):
        family.encode_ids(pipe, {"tokenizer": torch.zeros(77, dtype=torch.long)})
