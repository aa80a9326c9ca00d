"""Stable Diffusion 1.x and its metrics at real size with random weights (issue 37): the architecture
is the published one, CLIP's tokenizer is CLIP's, every prompt with five learned tokens fits."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image, ImageDraw
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from originality.domains import DOMAINS
from originality.method.dreamsim import DreamSimDistance
from originality.method.in_distribution import ClipClassifier
from originality.method.inversion import placeholder_phrase, placeholder_tokens
from originality.method.search import score_preset
from originality.method.signals import SignalConfig
from originality.models import random_weights
from originality.scorer import Scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines import tiny_clip_pipeline, tiny_clip_text_config, tiny_clip_tokenizer  # noqa: E402


def picture(colour: str) -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((10, 20, 50, 60), fill=colour)
    return image


def test_sd1_components_have_the_published_parameter_counts():
    with init_empty_weights():  # the architecture without 4 GB of random numbers
        parts = random_weights.sd1_components()
    counts = {name: random_weights.parameter_count(module) for name, module in parts.items()}
    assert counts == random_weights.SD1_PARAMETERS
    assert parts["unet"].config.cross_attention_dim == parts["text_encoder"].config.hidden_size == 768
    assert 2 ** (len(parts["vae"].config.block_out_channels) - 1) == 8  # f = 8: 512 px -> 64 latents


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory):
    return random_weights.clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


def test_the_clip_tokenizer_splits_as_open_clip_does(clip_tokenizer):
    reference = SimpleTokenizer()
    assert len(clip_tokenizer) == 49408 and clip_tokenizer.model_max_length == 77
    for text in ["a photo of a house", "Cat in a painting, oil on canvas!", "a rendition of the weathered barn"]:
        ids = clip_tokenizer(text).input_ids
        assert ids == [49406, *reference.encode(text), 49407]


def test_every_real_domain_prompt_with_five_learned_tokens_fits_clip(clip_tokenizer):
    clip_tokenizer.add_tokens(placeholder_tokens(5))
    phrase = placeholder_phrase(5)
    longest = 0
    for domain in DOMAINS.values():
        if domain.name == "shapes":
            continue
        for text in (*domain.templates, domain.prompt, *domain.edit_prompts):
            ids = clip_tokenizer(text.format(phrase)).input_ids
            assert sum(i >= 49408 for i in ids) == 5, text  # each learned token is one position
            longest = max(longest, len(ids))
    assert longest <= random_weights.CLIP_CONTEXT


def test_random_dreamsim_ensemble_is_a_distance():
    model, preprocess = random_weights.dreamsim_parts()
    distance = DreamSimDistance.from_model(model, preprocess)
    assert distance.embed([picture("red")]).shape == (1, 768 + 512 + 512)  # DINO cls, CLIP and OpenCLIP embeddings
    d = distance(picture("red"), [picture("red"), picture("blue")])
    assert d.shape == (2,) and abs(d[0]) < 1e-5 and d[1] > 1e-4


def test_a_classifier_from_parts_answers_like_a_loaded_one(tmp_path):
    tokenizer = tiny_clip_tokenizer(tmp_path / "tok")
    config = CLIPConfig(
        text_config=tiny_clip_text_config(tokenizer),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=4),
        projection_dim=16,
    )  # fmt: skip
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    classifier = ClipClassifier.from_model(CLIPModel(config), processor)
    p = classifier.probabilities([picture("red"), picture("blue")], ["a photo of a cat", "a photo of a house"])
    assert p.shape == (2, 2) and np.allclose(p.sum(1), 1)


def test_the_scorer_reads_the_signals_on_the_grid_it_is_given(tmp_path):
    pipeline = tiny_clip_pipeline(tmp_path / "pipe")
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2, distance="ssim")
    scorer = Scorer(pipeline, config, signal_config=SignalConfig(timesteps=3, batch_size=4))
    result = scorer.score(picture("red").resize((32, 32)), domain="houses")
    assert result.familiarity["grid"]["timesteps"] == 3 and result.familiarity["unet_evaluations"] == 6
    assert torch.isfinite(torch.tensor(list(result.familiarity["signals"].values()))).all()
