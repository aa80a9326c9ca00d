"""Issue 6 probe: does the frozen text encoder tell "blue circle and red square" from "red circle
and blue square"?

    python research/probe_text_binding.py [--encoder minilm]

The UNet cross-attends to the encoder's token outputs as a set, so which colour belongs to which
shape must be carried either by those outputs (the shape token's output depends on its colour
word) or by their positions. For caption pairs that differ only in which colour sits on which
shape, print the cosine similarity of the shape tokens' outputs at every layer (1.000: the
output does not depend on the colour), and the same for one-element captions as a reference.

A cosine near 1 could be an artefact of anisotropy (a few large dimensions shared by every
output), so each line also gives a scale-free ratio at the last layer: how far the colour swap
moves the shape token's output, over how far replacing the shape word itself (at the same
position, same colours) moves it. 0 means the output ignores its colour; 1 means the colour
matters as much as the shape. The same ratio for a change of the *other* shape (circle + square
to circle + triangle) tells whether a shape token knows its partner, that is whether the encoder
hands over a pair or two independent elements.
"""

from __future__ import annotations

import argparse

import torch

from originality.models.text_encoders import load_text_encoder

# (caption, its colour swap, the caption with the probed shape replaced by another shape)
PAIRS = [
    (
        "big blue full circle and big red full square",
        "big red full circle and big blue full square",
        {
            "circle": "big blue full hexagon and big red full square",
            "square": "big blue full circle and big red full star",
        },
    ),
    (
        "big green full square and big red full triangle",
        "big red full square and big green full triangle",
        {
            "square": "big green full hexagon and big red full triangle",
            "triangle": "big green full square and big red full star",
        },
    ),
]
SINGLE = ("big blue full circle", "big red full circle", {"circle": "big blue full hexagon"})
# Does a shape token know its partner? (caption, the same with the partner shape changed, and
# with the probed shape itself changed): common partner -> rare partner, rare -> unseen.
PARTNERS = [
    (
        "big blue full circle and big red full square",
        "big blue full circle and big red full triangle",
        {"circle": "big blue full hexagon and big red full square"},
    ),
    (
        "big blue full triangle and big red full circle",
        "big blue full triangle and big red full square",
        {"triangle": "big blue full hexagon and big red full circle"},
    ),
]


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
    probes = [(*p, "colour swap") for p in (*PAIRS, SINGLE)] + [(*p, "partner change") for p in PARTNERS]
    for caption, swapped, replaced, what in probes:
        ids, states = hidden_states(tokenizer, encoder, [caption, swapped, *replaced.values()])
        words = tokenizer.convert_ids_to_tokens(ids[0])
        last = states[-1]
        print(f"{caption!r} vs {swapped!r}")
        for k, word in enumerate(replaced):
            i = words.index(word)
            per_layer = " ".join(f"{cos(h[0, i], h[1, i], dim=0):.3f}" for h in states)
            # Row 2 + k holds the caption with `word` replaced (its colours unchanged).
            ratio = (last[0, i] - last[1, i]).norm() / (last[0, i] - last[2 + k, i]).norm()
            print(f"  {word:8s} (position {i}), layers 0..{len(states) - 1}: {per_layer}")
            print(f"  {'':8s} {what} / shape change at the last layer: {ratio:.3f}")


if __name__ == "__main__":
    main()
