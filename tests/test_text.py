"""Prompt embeddings: SD 1.5 tokenization, equality with diffusers' encode_prompt, bad input."""

import pytest
import torch

from otinterp.models import load_pipeline
from otinterp.text import encode, encode_ids, tokenize, uncond_embedding

BOS, EOS = 49406, 49407
LONG = " ".join(f"word{i}" for i in range(100))  # 100 words: far over 77 tokens


@pytest.fixture(scope="module")
def tiny():
    return load_pipeline("tiny")


def test_tokenize_pads_with_eos(tiny):
    ids = tokenize(tiny, ["a photo of a cat", ""])
    assert ids.shape == (2, 77) and ids.dtype == torch.int64
    assert ids[0].tolist() == [BOS, 320, 1125, 539, 320, 2368, EOS] + [EOS] * 70
    assert ids[1].tolist() == [BOS] + [EOS] * 76


def test_long_prompt_is_truncated_with_a_warning_naming_it(tiny):
    with pytest.warns(UserWarning, match=r"1 prompt\(s\) longer than 77 tokens truncated.*'word0 word1 word2"):
        ids = tokenize(tiny, ["a photo of a cat", LONG])
    full = tiny.tokenizer(LONG).input_ids
    assert len(full) > 77
    assert ids[1].tolist() == full[:76] + [EOS]


def test_short_prompts_do_not_warn(tiny, recwarn):
    tokenize(tiny, ["a photo of a cat", ""])
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_encode_equals_diffusers_encode_prompt(tiny):
    prompts = ["a photo of a cat", "", "a red double decker bus on a city street", LONG]
    with pytest.warns(UserWarning, match="truncated"):
        embeds = encode(tiny, prompts)
    expected, negative = tiny.encode_prompt(prompts, tiny.device, 1, do_classifier_free_guidance=True)
    assert embeds.shape == (4, 77, tiny.text_encoder.config.hidden_size)
    assert embeds.dtype == tiny.text_encoder.dtype and embeds.device == tiny.device
    assert torch.equal(embeds, expected)
    assert torch.equal(uncond_embedding(tiny), negative[:1])
    assert torch.equal(uncond_embedding(tiny), embeds[1:2])


def test_encode_does_not_depend_on_batch_size(tiny):
    prompts = ["a photo of a cat", "two dogs", "a bus", "", "a tree by a lake"]
    # A smaller batch may change how CPU kernels block their sums: equal up to float32 rounding.
    torch.testing.assert_close(encode(tiny, prompts, batch_size=2), encode(tiny, prompts), rtol=0, atol=1e-6)


def test_encoder_depends_on_the_prompt(tiny):
    embeds = encode(tiny, ["a photo of a cat", "a photo of a dog"])
    assert (embeds[0] - embeds[1]).abs().max() > 1e-2


def test_bad_prompts_are_clear_errors(tiny):
    with pytest.raises(TypeError, match="not one string: 'a cat'; wrap it in a list"):
        encode(tiny, "a cat")
    with pytest.raises(ValueError, match="no prompts given"):
        encode(tiny, [])
    with pytest.raises(TypeError, match=r"prompts must be strings, got None \(NoneType\)"):
        encode(tiny, ["a cat", None])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        encode(tiny, ["a cat"], batch_size=0)
    with pytest.raises(ValueError, match=r"token ids must be a 2-D .* got shape \(77,\)"):
        encode_ids(tiny, torch.zeros(77, dtype=torch.long))


def test_other_families_are_sent_to_their_family_encoder():
    with pytest.raises(TypeError, match="SD 1.x/2.x only, not StableDiffusionXLPipeline: use otinterp.families"):
        encode(load_pipeline("sdxl-tiny"), ["a photo of a cat"])
