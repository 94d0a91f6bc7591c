"""Pipelines from model specs: offline random-weight models, the CLIP tokenizer, loading errors."""

import huggingface_hub.constants
import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.tokenizer import SimpleTokenizer

from otinterp.families import family_of
from otinterp.models import OFFLINE_SPECS, load_pipeline, prepare_for_speed, weights_note
from otinterp.offline import SD15_CONFIGS, TINY_CONFIGS, clip_tokenizer
from otinterp.params import RANDOM_WEIGHT_MODELS, RANDOM_WEIGHTS_NOTE, make
from otinterp.render import render

BOS, EOS = 49406, 49407

PROMPTS = [
    "a photo of a cat",
    "A red double-decker bus, on a CITY street!",
    "two dogs playing with 3 frisbees in the park's grass",
    "naïve café owner's résumé",
    "",
]


def test_tokenizer_matches_the_spec_example():
    ids = clip_tokenizer()("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert ids == [BOS, 320, 1125, 539, 320, 2368, EOS] + [EOS] * 70


def test_tokenizer_built_from_open_clip_vocabulary(tmp_path):
    folder = tmp_path / "tok"
    tokenizer = clip_tokenizer(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["merges.txt", "vocab.json"]
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (BOS, EOS, EOS)
    assert tokenizer.model_max_length == 77
    assert len((folder / "merges.txt").read_text().splitlines()) == 1 + 48894
    reference = SimpleTokenizer()  # CLIP's own BPE implementation, shipped by open_clip
    for prompt in PROMPTS:
        assert tokenizer(prompt).input_ids == [BOS, *reference.encode(prompt), EOS], prompt


def test_tokenizer_cache_is_reused(tmp_path):
    folder = tmp_path / "tok"
    clip_tokenizer(folder)
    stamp = (folder / "vocab.json").stat().st_mtime_ns
    assert len(clip_tokenizer(folder)) == 49408
    assert (folder / "vocab.json").stat().st_mtime_ns == stamp


def test_tiny_pipeline_has_sd15_data_flow(pipe):
    assert pipe.safety_checker is None
    assert pipe.vae_scale_factor == 8
    text = pipe.text_encoder.config
    assert (text.vocab_size, text.max_position_embeddings) == (49408, 77)
    assert pipe.unet.config.cross_attention_dim == text.hidden_size
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    config = pipe.scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (config.num_train_timesteps, config.skip_prk_steps, config.steps_offset) == (1000, True, 1)
    assert config.set_alpha_to_one is False
    assert pipe.text_encoder.dtype == pipe.unet.dtype == torch.float32
    assert pipe.device.type == "cpu"


def test_tiny_weights_are_seeded_and_leave_global_rng_alone(pipe):
    state = torch.get_rng_state()
    again = load_pipeline("tiny")
    assert torch.equal(torch.get_rng_state(), state)
    for name in ("text_encoder", "unet", "vae"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16"])
def test_dtype_is_applied(dtype):
    pipe = load_pipeline("tiny", dtype=dtype)
    assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", ["int64", "cuda", "no_such_type"])
def test_unknown_dtype_is_a_clear_error(dtype):
    with pytest.raises(ValueError, match=f"unknown floating-point dtype '{dtype}'"):
        load_pipeline("tiny", dtype=dtype)


def test_sd15_configurations_have_sd15_sizes():
    with init_empty_weights():
        unet = UNet2DConditionModel(**SD15_CONFIGS["unet"])
        vae = AutoencoderKL(**SD15_CONFIGS["vae"])
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD 1.5's "859.5 M"
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    text = SD15_CONFIGS["text_encoder"]  # CLIP ViT-L/14's text tower
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (768, 12, 12)
    assert SD15_CONFIGS["unet"]["cross_attention_dim"] == 768
    assert TINY_CONFIGS["scheduler"] == SD15_CONFIGS["scheduler"]


def test_saved_tiny_pipeline_renders_the_same_image(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "tiny")
    loaded = load_pipeline(str(tmp_path / "tiny"))
    assert loaded.safety_checker is None
    options = dict(seed=0, steps=3, guidance=7.5, height=64, width=64, batch_size=1, disable=True)
    images = [render(p, family_of(p).encode(p, ["a photo of a cat"]).tokens, **options) for p in (pipe, loaded)]
    assert torch.equal(*images)


def test_channels_last_changes_layout_not_images(pipe):
    options = dict(seed=0, steps=3, guidance=7.5, height=64, width=64, batch_size=1, disable=True)
    embeds = family_of(pipe).encode(pipe, ["a photo of a cat"]).tokens
    fast = prepare_for_speed(load_pipeline("tiny"), channels_last=True)
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    # Another memory layout sums in another order: equal up to float32 rounding.
    torch.testing.assert_close(render(fast, embeds, **options), render(pipe, embeds, **options), rtol=0, atol=1e-5)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder .*no-such-folder does not exist"):
        load_pipeline(str(tmp_path / "no-such-folder"))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model checkpoint .*sd15\.safetensors does not exist"):
        load_pipeline(str(tmp_path / "sd15.safetensors"))


def test_unknown_hub_id_says_how_to_get_weights(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never wait on the network
    with pytest.raises(OSError, match=r"could not load model 'otinterp-tests/no-such-model'.*hf download"):
        load_pipeline("otinterp-tests/no-such-model")


def test_weights_note():
    assert weights_note("tiny") == weights_note("sd15-random") == RANDOM_WEIGHTS_NOTE
    assert weights_note("stable-diffusion-v1-5/stable-diffusion-v1-5") == ""
    assert set(RANDOM_WEIGHT_MODELS) == set(OFFLINE_SPECS)
    assert all(weights_note(spec) == RANDOM_WEIGHTS_NOTE for spec in OFFLINE_SPECS)
    assert make(model="sd15-random", lpips_backbone="pretrained").caveat == RANDOM_WEIGHTS_NOTE
    assert make(model="models/sd15", lpips_backbone="pretrained").caveat is None
