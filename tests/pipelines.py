"""Tiny pipelines built locally for tests: a CLIP-based Stable Diffusion (random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from originality.models.pipeline import assemble

WORDS = ["a", "photo", "of", "the", "house", "cat", "dog", "in", "painting", "big", "red", "circle"]


def tiny_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """A word-level CLIP BPE tokenizer: every word is one token, no merges needed."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for w in WORDS for c in w})
    vocab = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    merges = ["#version: 0.2"]
    for word in WORDS:  # merge letter by letter up to the whole word
        piece = word[0]
        for c in word[1:-1] + word[-1:]:
            right = c + "</w>" if len(piece) + 1 == len(word) else c
            merges.append(f"{piece} {right}")
            piece = piece + right
            vocab.append(piece)
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("\n".join(dict.fromkeys(merges)) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def tiny_clip_text_config(tokenizer: CLIPTokenizer) -> dict:
    """The tiny CLIP text tower shared by the tiny pipeline and the tiny classifier."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_clip_pipeline(folder: Path, seed: int = 0) -> StableDiffusionPipeline:
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer(folder / "tok")
    encoder = CLIPTextModel(CLIPTextConfig(**tiny_clip_text_config(tokenizer)))
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=(1, 1),
        norm_num_groups=8,
    )
    pipeline = assemble(vae, encoder, tokenizer, unet)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_clip_classifier(folder: Path, seed: int = 0) -> Path:
    """A tiny random CLIPModel + processor saved to ``folder`` (safetensors), for the editability check."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer(folder / "tok")
    config = CLIPConfig(
        text_config=tiny_clip_text_config(tokenizer),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_as_hub_cache(pipeline: StableDiffusionPipeline, cache: Path, repo_id: str) -> Path:
    """Lay ``pipeline`` out as the Hugging Face hub cache holds a downloaded repo (offline loading)."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    pipeline.save_pretrained(repo / "snapshots" / commit, safe_serialization=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo
