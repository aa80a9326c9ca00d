"""Issue 6 probe: does the frozen text encoder tell "blue circle and red square" from "red circle
and blue square"?

    python benchmarks/probe_text_binding.py [--encoder minilm]

The UNet cross-attends to the encoder's token outputs as a set, so which colour belongs to which
shape must be carried either by those outputs (the shape token's output depends on its colour
word) or by their positions. For caption pairs that differ only in which colour sits on which
shape, print the cosine similarity of the shape tokens' outputs at every layer (1.000: the
output does not depend on the colour), and the same for one-element captions as a reference.
"""

from __future__ import annotations

import argparse

import torch

from originality.models.text_encoders import load_text_encoder

PAIRS = [
    ("big blue full circle and big red full square", "big red full circle and big blue full square"),
    ("big green full square and big red full triangle", "big red full square and big green full triangle"),
]
SINGLE = ("big blue full circle", "big red full circle")


def hidden_states(tokenizer, encoder, texts: list[str]):
    tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        out = encoder(tokens.input_ids, attention_mask=tokens.attention_mask, output_hidden_states=True)
    return tokens.input_ids, out.hidden_states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args()
    tokenizer, encoder = load_text_encoder(args.encoder)
    cos = torch.nn.functional.cosine_similarity
    for texts in (*PAIRS, SINGLE):
        ids, states = hidden_states(tokenizer, encoder, list(texts))
        words = tokenizer.convert_ids_to_tokens(ids[0])
        shapes = [i for i, w in enumerate(words) if w in {"circle", "square", "triangle"}]
        print(f"{texts[0]!r} vs {texts[1]!r}")
        for i in shapes:
            per_layer = " ".join(f"{cos(h[0, i], h[1, i], dim=0):.3f}" for h in states)
            print(f"  {words[i]:8s} (position {i}), layers 0..{len(states) - 1}: {per_layer}")


if __name__ == "__main__":
    main()
