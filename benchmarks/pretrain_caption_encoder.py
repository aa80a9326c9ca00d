"""Issue 6 probe: MiniLM further pretrained on a dataset's captions by masked language modelling.

    python benchmarks/pretrain_caption_encoder.py --data outputs/data/originality-mix-100k \
        --out outputs/encoders/minilm-mix-mlm [--epochs 1] [--lr 1e-4] [--batch 128]

Why: on two-element captions MiniLM hands the UNet nearly a bag of words (``probe_text_binding.py``:
a colour swap moves a shape token's output by 4-6% of a change of the shape word), so any pair
the model has seen at all composes as easily as the common one. A BERT that has read the
training captions knows which shapes go together (masked-LM loss is lowest when a masked shape
is predicted from its partner), so its shape tokens should depend on their partner. Whether a
UNet conditioned on such an encoder learns a rare pair more slowly than a common one is the
question this encoder is for; this script only makes it and reports how contextual it is.

The encoder is MiniLM's (same tokenizer and vocabulary, so the inversion's initial word
"shapes" keeps its pretrained embedding) with a fresh masked-LM head, trained on every non-empty
caption in the dataset (duplicates kept: the frequencies are the point), then saved as a
frozen-ready ``BertModel`` folder (safetensors) that ``--set text_encoder=FOLDER`` accepts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    from originality.models.text_encoders import load_text_encoder
    from originality.shapes.dataset import read_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists; choose another --out")
    torch.manual_seed(args.seed)

    tokenizer, base = load_text_encoder("minilm")
    model = BertForMaskedLM(base.config)
    missing = model.bert.load_state_dict(base.state_dict(), strict=False)
    assert not missing.missing_keys or all("pooler" in k for k in missing.missing_keys), missing
    model.tie_weights()  # the decoder shares MiniLM's word embeddings
    model.train().requires_grad_(True)

    captions = [c for c in read_table(args.data, ["caption"]).column("caption").to_pylist() if c]
    encoded = tokenizer(captions, truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    rng = np.random.default_rng(args.seed)
    steps = int(args.epochs * len(encoded) / args.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(steps // 20, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    order, losses, start = rng.permutation(len(encoded)), [], time.time()
    for step in range(steps):
        picked = order[(step * args.batch) % len(order) :][: args.batch]
        batch = collate([{"input_ids": encoded[i]} for i in picked])
        # The head only at masked positions: scoring all 30,522 words everywhere ran over 4.7 s a step here (1.85 s).
        hidden = model.bert(batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        masked = batch["labels"] != -100
        logits = model.cls(hidden[masked])
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"][masked])
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            print(
                f"step {step + 1}/{steps}  mlm loss {np.mean(losses[-50:]):.3f}  {time.time() - start:.0f} s",
                flush=True,
            )

    out.mkdir(parents=True)
    model.bert.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {
        "base": "minilm",
        "data": str(args.data),
        "captions": len(encoded),
        "steps": steps,
        "batch": args.batch,
        "lr": args.lr,
        "seed": args.seed,
        "final_mlm_loss": float(np.mean(losses[-50:])),
        "seconds": round(time.time() - start, 1),
    }
    (out / "pretraining.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
