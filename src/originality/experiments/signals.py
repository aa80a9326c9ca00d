"""Which familiarity signal tracks training frequency: the validation of ``originality.method.signals``.

Where the truth is known, on a model trained on the originality mix: queries of the common (30%
of the training images), rare (0.1%) and unseen (never) pairs, as in the min-tokens experiment
(the same query seed, so a min-tokens run's token counts are reused query for query), and
shape-matched controls, pairs the mix draws often that hold the same shapes
(:data:`~originality.shapes.queries.CONTROLS`). Each query's denoiser readings are taken per
timestep on three grid seeds and kept in ``readings.jsonl`` (resumable); every signal, and every
variant of one (weighting, gap form, normalisations), is computed from them afterwards:

* ``rho``: Spearman's rho between the signal and the group's frequency rank (common 1, rare 2,
  unseen 3), with a bootstrap 95% interval over queries; ``auroc`` per group pair;
* ``dose_response_rho``: the same over every group and control, by pair frequency;
* ``controls``: rho within the groups that share a shape (circle: common, circle+hexagon, rare;
  square: common, square+hexagon, unseen; triangle: triangle+hexagon, rare, unseen); a signal
  passes when all three intervals lie above 0, i.e. it follows the pair's frequency, not its shapes;
* ``seeds``: rho on each grid seed (the spread the noise draw leaves);
* ``group_means``, ``by_colours`` and ``seconds_per_image``;
* beside them, the baselines: ``baseline_elements_only_*`` (the query's elements read alone, in
  their places: knows the elements, not the pair) and ``baseline_caption_lookup`` (the true
  caption's exact training frequency, negated: the ceiling no reading of the model can pass).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments.runner import Experiment, run_experiment
from originality.method.familiarity import build_reference, reading_prompt
from originality.method.inversion import InversionSettings, invert, placeholder_phrase, set_embeddings
from originality.method.search import score_preset
from originality.method.signals import REGISTRY, SignalConfig, query_latents, readings, signal_grid
from originality.models.pipeline import load_pipeline, model_identity
from originality.report.signals import signals_plots, signals_report
from originality.shapes.captions import colour_count
from originality.shapes.queries import (
    CONTROLS,
    PAIRS,
    exact_pair_frequencies,
    pair_frequencies,
    render_pair,
    save_queries,
)
from originality.shapes.specs import originality_mix
from originality.stats import auroc, mean_or_none, rho, spearman

READINGS = "readings.jsonl"
WEIGHTS = "grid-weights.json"
REFERENCE_READINGS = "reference-readings.json"
MAIN = ("common", "rare", "unseen")
MATCHED = {
    "circle": ("common", "circle+hexagon", "rare"),
    "square": ("common", "square+hexagon", "unseen"),
    "triangle": ("triangle+hexagon", "rare", "unseen"),
}
PAIR_KEYS = ("common<rare", "rare<unseen", "common<unseen")


@dataclass
class SignalsConfig:
    queries: int = 20  # per group and control
    query_seed: int = 7_000_003  # the min-tokens experiment's: its token counts are reused per query
    size: int = 64
    groups: tuple[str, ...] = (*MAIN, *CONTROLS)
    grid_seeds: tuple[int, ...] = (0, 1, 2)
    grid: SignalConfig = field(default_factory=SignalConfig)
    reference_samples: int = 64  # the model's own samples, for per-timestep normalisation
    # The quick preset's sampler steps, guidance and detector confidence: the reading the scorer would use.
    reference_steps: int = field(default_factory=lambda: score_preset("quick").inference_steps)
    guidance_scale: float = field(default_factory=lambda: score_preset("quick").guidance_scale)
    detector_threshold: float = field(default_factory=lambda: score_preset("quick").detector_threshold)
    learned_tokens: bool = False  # also the prompt-free gap of a one-token inversion per main query
    # 2: the learned token read with the template it was learned with (1 read it inside "a photo of {}")
    learned_reading: int = 2
    inversion_steps: int = 150
    bootstrap: int = 2000
    model: str | None = field(
        default=None, metadata={"help": "a model trained on the originality mix (default: shipped)"}
    )
    tokens_from: str | None = field(
        default=None, metadata={"help": "a min-tokens experiment folder of the same queries: its token counts"}
    )

    def validate(self) -> SignalsConfig:
        if self.queries < 1:
            raise OriginalityError(f"--queries must be >= 1, got {self.queries}")
        unknown = [g for g in self.groups if g not in PAIRS]
        if unknown:
            raise OriginalityError(f"unknown group {unknown[0]!r}; known: {', '.join(PAIRS)}")
        if not self.grid_seeds:
            raise OriginalityError("at least one grid seed")
        self.grid.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "grid": self.grid.to_dict()}


# -- readings, one query at a time ------------------------------------------------------------------
def _round(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.5g}") for v in values.tolist()]


def query_readings(pipeline, image, text: str, reading: str | None, alone, grids, learned=None) -> dict[str, Any]:
    """One query's per-timestep readings on every grid (prompted by its caption and by the
    detector's reading), its elements alone on the first grid, and a learned token's gap."""
    latents = query_latents(pipeline, [image])
    out: dict[str, Any] = {"readings": {}, "seconds": {}}
    for seed, grid in grids.items():
        started = time.perf_counter()
        plain = readings(pipeline, latents, None, grid, conditional=False)
        middle = time.perf_counter()
        by_caption = readings(pipeline, latents, [text], grid)
        end = time.perf_counter()
        entry = {"unconditional": _round(plain["unconditional"][0])}
        entry["conditional_caption"] = _round(by_caption["conditional"][0])
        entry["gap_caption"] = _round(by_caption["gap"][0])
        if reading is not None:
            by_reading = by_caption if reading == text else readings(pipeline, latents, [reading], grid)
            entry["conditional_reading"] = _round(by_reading["conditional"][0])
            entry["gap_reading"] = _round(by_reading["gap"][0])
        out["readings"][str(seed)] = entry
        # the first grid's passes: 64 UNet rows unprompted, then 2 x 64 for a prompted signal
        out["seconds"].setdefault("unconditional", middle - started)
        out["seconds"].setdefault("prompted", end - middle)
    first = next(iter(grids.values()))
    parts = query_latents(pipeline, [image for image, _ in alone])
    both = readings(pipeline, parts, [t for _, t in alone], first)
    out["alone"] = {
        "unconditional": [_round(v) for v in both["unconditional"]],
        "gap": [_round(v) for v in both["gap"]],
    }
    if learned is not None:
        started = time.perf_counter()
        vectors = learned(image)
        set_embeddings(pipeline, vectors)
        # read with the template it was learned with (the shapes domain's), as the scorer reads it
        prompt = load_domain("shapes").prompt.format(placeholder_phrase(len(vectors)))
        gap = readings(pipeline, latents, [prompt], first)["gap"][0]
        out["learned"] = {"gap_m1": _round(gap)}
        out["seconds"]["learned_m1"] = time.perf_counter() - started
    return out


# -- the run ----------------------------------------------------------------------------------------
def run(out: Path, config: SignalsConfig, progress: bool) -> None:
    """Read every query not yet read (more queries extend the run), then the model's own samples."""
    pipeline = load_pipeline(config.model)
    domain = load_domain("shapes")
    detector = ElementDetector.load(threshold=config.detector_threshold)
    read = reading_prompt(domain, detector)
    rows = write_queries(out, config)
    if config.tokens_from:
        tokens_of(config.tokens_from, rows, config)  # a bad folder fails before any work
    grids = {seed: signal_grid(pipeline, _seeded(config.grid, seed)) for seed in config.grid_seeds}
    learned = _one_token_inversion(pipeline, config) if config.learned_tokens else None
    done = runs.read_records(out, READINGS, "image")
    for row in tqdm([r for r in rows if r["image"] not in done], desc="signals", disable=not progress):
        index = int(Path(row["image"]).stem.rsplit("-", 1)[1])
        image, text, parts = render_pair(row["group"], index, config.query_seed, config.size)
        alone = [(part, read(part) or "") for part in parts]
        use = learned if learned and row["group"] in MAIN else None
        record = {"image": row["image"], "group": row["group"], "caption": text, "reading": read(image)}
        record.update(query_readings(pipeline, image, text, record["reading"], alone, grids, use))
        runs.append_jsonl(out / READINGS, record)
    reference = build_reference(
        pipeline,
        domain,
        model=model_identity(config.model),
        config=grids[config.grid_seeds[0]].config,
        samples=config.reference_samples,
        steps=config.reference_steps,
        guidance=config.guidance_scale,
        read=read,
        cache=out / "reference.json",
        progress=progress,
    )
    _reference_readings(out, reference)
    runs.write_json(out / WEIGHTS, grid_weights(grids[config.grid_seeds[0]]))


def summarise(out: Path, config: SignalsConfig) -> dict[str, Any]:
    rows = write_queries(out, config)
    tokens = tokens_of(config.tokens_from, rows, config) if config.tokens_from else {}
    done = runs.read_records(out, READINGS, "image")
    records = [done[r["image"]] for r in rows]
    weights = runs.read_json(out / WEIGHTS)
    summary = summarise_values(records, rows, config, tokens, runs.read_json(out / REFERENCE_READINGS), weights)
    summary["weights"] = weights
    values = summary.pop("values")
    with runs.atomic_path(out / "values.jsonl") as tmp:
        tmp.write_text("".join(runs.dumps({"image": i, "group": g, "values": v}) + "\n" for i, g, v in values))
    summary["model"] = model_identity(config.model)
    summary["tokens_from"] = config.tokens_from
    return summary


def figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    return list(signals_plots(summary, out))


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'signal':34s} {'rho':>6s} {'95% interval':>15s}  {'dose':>5s}  controls  s/image"]
    for name, s in sorted(summary["signals"].items(), key=lambda kv: -(kv[1]["rho"] or -9)):
        rho_ = "  n/a" if s["rho"] is None else f"{s['rho']:6.2f}"
        ci = "" if not s["rho_ci"] else f"[{s['rho_ci'][0]:5.2f}, {s['rho_ci'][1]:5.2f}]"
        dose = "  n/a" if s["dose_response_rho"] is None else f"{s['dose_response_rho']:5.2f}"
        seconds = "" if s["seconds_per_image"] is None else f"{s['seconds_per_image']:.2f}"
        verdict = {True: "pass", False: "fail", None: "n/a"}[s["passes_controls"]]
        lines.append(f"{name:34s} {rho_} {ci:>15s}  {dose}  {verdict:8s}  {seconds}")
    return "\n".join(lines)


def identity(config: SignalsConfig) -> dict[str, Any]:
    return {"model": model_identity(config.model), "detector": detector_identity()}


EXPERIMENT = Experiment(
    name="signals",
    title="Which familiarity signal tracks training frequency (with shape-matched controls)",
    presets={"default": SignalsConfig},
    run=run,
    summarise=summarise,
    table=table,
    figures=figures,
    identity=identity,
    grows=("queries",),
    report=lambda out, summary: signals_report(summary, out),
)


def run_signals(
    model: str | Path | None,
    out: str | Path,
    config: SignalsConfig,
    *,
    tokens_from: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Read every query (resuming), then write summary.json, signals.png and report.html."""
    config = dataclasses.replace(
        config,
        model=None if model is None else str(model),
        tokens_from=None if tokens_from is None else str(tokens_from),
    )
    return run_experiment(EXPERIMENT, out, config, progress=progress)


def _seeded(grid: SignalConfig, seed: int) -> SignalConfig:
    return SignalConfig(**{**grid.to_dict(), "seed": seed})


def _one_token_inversion(pipeline, config: SignalsConfig):
    quick = score_preset("quick")  # its batch, learning rate and norm cap; fewer steps
    settings = InversionSettings(
        steps=config.inversion_steps,
        batch_size=quick.batch_size,
        lr=quick.lr,
        norm_cap=quick.norm_cap,
        initializer="shapes",
        templates=load_domain("shapes").templates,
    )

    def learn(image):
        return invert(pipeline, image, 1, settings).embeddings

    return learn


def _reference_readings(out: Path, reference) -> dict[str, list[float]]:
    """Per-timestep means of the reference samples' readings: what the normalised variants divide by
    (kept beside the run; a reference cached before it recorded them has none)."""
    path = out / REFERENCE_READINGS
    if path.is_file():
        return runs.read_json(path)
    means = {name: [float(f"{v:.5g}") for v in values] for name, values in reference.timestep_means.items()}
    runs.write_json(path, means)
    return means


def write_queries(out: Path, config: SignalsConfig) -> list[dict[str, str]]:
    """``queries/<group>-<i>.png`` and ``queries.csv``, index by index across the groups."""

    def rendered():
        for i in range(config.queries):
            for group in config.groups:
                image, text, _ = render_pair(group, i, config.query_seed, config.size)
                yield f"{group}-{i:02d}.png", group, image, text

    return save_queries(out, rendered())


def tokens_of(folder: str | Path, rows: list[dict[str, str]], config: SignalsConfig) -> dict[str, dict[str, float]]:
    """Token and soft counts from a min-tokens run of the same queries: the same query seed and
    size render the same images, query for query."""
    folder = Path(folder)
    results = folder / "scores" / "results.jsonl"
    if not (results.is_file() and (folder / "experiment.json").is_file()):
        raise OriginalityError(f"{folder} holds no min-tokens run (experiment.json, scores/results.jsonl)")
    saved = runs.read_json(folder / "experiment.json")["config"]
    if (saved["query_seed"], saved["size"]) != (config.query_seed, config.size):
        raise OriginalityError(f"{folder} scored other queries (seed {saved['query_seed']}); use its --query-seed")
    m_max = int(saved["score"]["max_tokens"])
    wanted = {r["image"] for r in rows}
    out = {}
    for record in runs.read_jsonl(results):
        if record["image"] in wanted:
            count = m_max + 1 if record["count"] is None else record["count"]
            out[record["image"]] = {"token_count": float(count), "soft_count": float(record["soft_tokens"])}
    return out


# -- the numbers ------------------------------------------------------------------------------------
def variants(
    record: dict[str, Any], seed: str, weights: dict[str, np.ndarray], ref: dict[str, list[float]]
) -> dict[str, float]:
    """Every signal variant of one query on one grid seed, from its per-timestep readings."""
    r = {k: np.asarray(v) for k, v in record["readings"][seed].items()}
    uniform, elbo = weights["uniform"], weights["elbo"]
    gap = r.get("gap_reading", r["gap_caption"])
    cond = r.get("conditional_reading", r["conditional_caption"])
    # Every registered signal, as the scorer reads it (the reading's prompt), then the variants.
    raw = {k: torch.as_tensor(v, dtype=torch.float32)[None] for k, v in
           {"unconditional": r["unconditional"], "conditional": cond, "gap": gap}.items()}  # fmt: skip
    w = torch.as_tensor(uniform, dtype=torch.float32)
    out = {name: float(signal.reduce(raw, w)[0]) for name, signal in REGISTRY.items()}
    out |= {
        "unconditional_loss_elbo": float(r["unconditional"] @ elbo),
        "conditional_loss_caption": float(r["conditional_caption"] @ uniform),
        "loss_difference": float((r["unconditional"] - cond) @ uniform),
        "guidance_gap_caption": float(r["gap_caption"] @ uniform),
        "guidance_gap_squared": float((gap**2) @ uniform),
        "guidance_gap_elbo": float(gap @ elbo),
    }
    if "low_t" in weights:
        out["guidance_gap_low_t"] = float(gap @ weights["low_t"])
        out["guidance_gap_high_t"] = float(gap @ weights["high_t"])
        out["unconditional_loss_low_t"] = float(r["unconditional"] @ weights["low_t"])
    if ref:
        out["guidance_gap_normalised"] = float((gap / np.asarray(ref["gap"])) @ uniform)
        out["unconditional_loss_normalised"] = float((r["unconditional"] / np.asarray(ref["unconditional"])) @ uniform)
    if seed == "0" and "alone" in record:
        alone_u = np.mean([np.asarray(v) @ uniform for v in record["alone"]["unconditional"]])
        alone_g = np.mean([np.asarray(v) @ uniform for v in record["alone"]["gap"]])
        out["unconditional_loss_vs_elements"] = out["unconditional_loss"] - float(alone_u)
        out["guidance_gap_vs_elements"] = out["guidance_gap"] - float(alone_g)
        # baselines that know the elements and nothing of the pair: their readings alone
        out["baseline_elements_only_unconditional_loss"] = float(alone_u)
        out["baseline_elements_only_guidance_gap"] = float(alone_g)
    if seed == "0" and "learned" in record:
        out["guidance_gap_learned_m1"] = float(np.asarray(record["learned"]["gap_m1"]) @ uniform)
    return out


def grid_weights(grid) -> dict[str, list[float]]:
    """Weights of a grid's rows: uniform, the ELBO's, and uniform over its low-noise or its
    high-noise half (t <= 500, t > 500)."""
    elbo = grid.slope / grid.slope.sum()
    low = (grid.timesteps <= 500).float()
    high = 1.0 - low
    return {
        "uniform": [1 / grid.size] * grid.size,
        "elbo": [float(w) for w in elbo],
        "low_t": [float(w) for w in low / low.sum()],
        "high_t": [float(w) for w in high / high.sum()],
    }


def summarise_values(
    records: list[dict[str, Any]],
    rows: list[dict[str, str]],
    config: SignalsConfig,
    tokens: dict[str, dict[str, float]],
    reference: dict[str, list[float]],
    weights: dict[str, list[float]],
) -> dict[str, Any]:
    """Every signal's rho, AUROCs, controls, dose-response and group means (the module's docstring)."""
    weights = {k: np.asarray(v) for k, v in weights.items()}
    frequency = pair_frequencies(originality_mix(), {g: PAIRS[g] for g in config.groups})
    exact = exact_pair_frequencies(originality_mix(), {g: PAIRS[g] for g in config.groups})
    group_of = {r["image"]: r["group"] for r in rows}
    colours = {r["image"]: colour_count(r["caption"]) for r in rows}
    per_seed = {
        str(seed): {r["image"]: variants(r, str(seed), weights, reference) for r in records}
        for seed in config.grid_seeds
    }
    first = per_seed[str(config.grid_seeds[0])]
    for image, values in first.items():  # the ceiling: the true caption's training frequency, looked up
        values["baseline_caption_lookup"] = -exact[group_of[image]]
    if len(config.grid_seeds) > 1:  # several noises per timestep: the grids' mean
        for image, values in first.items():
            for name in ("guidance_gap", "unconditional_loss"):
                values[f"{name}_{len(config.grid_seeds)}_noises"] = float(
                    np.mean([per_seed[str(s)][image][name] for s in config.grid_seeds])
                )
    for image, counts in tokens.items():
        if image in first:
            first[image].update(counts)
    every = {name for values in first.values() for name in values}
    # the baselines last: the signals' bootstrap draws stay those of the runs made before them
    names = sorted(every, key=lambda n: (n.startswith("baseline"), n))
    rng = np.random.default_rng(0)
    signals = {}
    for name in names:
        values = {image: v[name] for image, v in first.items() if name in v}
        entry = _evaluate(values, group_of, frequency, rng, config.bootstrap)
        entry["dose_response_rho_exact"] = _rho(values, group_of, exact)
        entry["seeds"] = [
            _rho(
                {i: v[name] for i, v in per_seed[str(s)].items() if name in v and group_of[i] in MAIN},
                group_of,
                frequency,
            )
            for s in config.grid_seeds
        ]
        entry["by_colours"] = {
            f"{c} colour{'s' if c > 1 else ''}": {
                g: mean_or_none([v for i, v in values.items() if group_of[i] == g and colours[i] == c]) for g in MAIN
            }
            for c in (1, 2)
        }
        entry["seconds_per_image"] = _seconds(records, name)
        signals[name] = entry
    return {
        "signals": signals,
        "values": [(image, group_of[image], v) for image, v in first.items()],
        "frequencies": frequency,
        # the query's own unit (exactly its two elements' shapes, nothing else), beside the "contains" rate
        "frequencies_exact": exact,
        "queries": {g: sum(group_of[r["image"]] == g for r in records) for g in config.groups},
        "settings": config.to_dict(),
    }


def _evaluate(values, group_of, frequency, rng, draws: int) -> dict[str, Any]:
    main = {i: v for i, v in values.items() if group_of[i] in MAIN}
    rank = _ranks(frequency)
    entry: dict[str, Any] = {}
    rho = _spearman_of(main, group_of, rank)
    entry["rho"], entry["p"] = (rho["rho"], rho["p"]) if rho else (None, None)
    entry["rho_ci"] = _bootstrap(main, group_of, lambda v, g: _rho(v, g, frequency), rng, draws)
    entry["auroc"], entry["auroc_ci"] = {}, {}
    for key in PAIR_KEYS:
        low, high = key.split("<")
        pair = {i: v for i, v in values.items() if group_of[i] in (low, high)}
        entry["auroc"][key] = _auroc(pair, group_of, low)
        entry["auroc_ci"][key] = _bootstrap(pair, group_of, lambda v, g, low=low: _auroc(v, g, low), rng, draws)
    entry["dose_response_rho"] = _rho(values, group_of, frequency)
    entry["dose_response_ci"] = _bootstrap(values, group_of, lambda v, g: _rho(v, g, frequency), rng, draws)
    entry["controls"] = {}
    for shape, groups in MATCHED.items():
        matched = {i: v for i, v in values.items() if group_of[i] in groups}
        if len({group_of[i] for i in matched}) == len(groups):
            ci = _bootstrap(matched, group_of, lambda v, g: _rho(v, g, frequency), rng, draws)
            entry["controls"][shape] = {"groups": list(groups), "rho": _rho(matched, group_of, frequency), "ci": ci}
    entry["passes_controls"] = (
        len(entry["controls"]) == len(MATCHED) and all(c["ci"][0] > 0 for c in entry["controls"].values())
        if entry["controls"]
        else None
    )
    entry["group_means"] = {g: mean_or_none([v for i, v in values.items() if group_of[i] == g]) for g in frequency}
    return entry


def _ranks(frequency: dict[str, float]) -> dict[str, int]:
    return {g: i + 1 for i, g in enumerate(sorted(frequency, key=lambda g: -frequency[g]))}


def _spearman_of(values, group_of, rank) -> dict[str, float] | None:
    images = list(values)
    return spearman([rank[group_of[i]] for i in images], [values[i] for i in images])


def _rho(values: dict[str, float], group_of, frequency) -> float | None:
    """Spearman's rho between a signal and its query's rarity (higher: rarer pair); positive when
    the signal calls the rarer pairs less familiar."""
    images = list(values)
    return rho([-frequency[group_of[i]] for i in images], [values[i] for i in images])


def _auroc(values: dict[str, float], group_of, low: str) -> float | None:
    """P(a query of the more frequent group scores below one of the rarer), ties half."""
    return auroc(
        [v for i, v in values.items() if group_of[i] == low], [v for i, v in values.items() if group_of[i] != low]
    )


def _bootstrap(values: dict[str, float], group_of, statistic, rng, draws: int) -> list[float] | None:
    """A 95% percentile interval of ``statistic(values, groups)``, resampling queries within each group."""
    by_group: dict[str, list[str]] = {}
    for image in values:
        by_group.setdefault(group_of[image], []).append(image)
    if not values or draws < 1:
        return None
    stats = []
    for _ in range(draws):
        sample, groups = {}, {}
        for g, images in by_group.items():
            for j, i in enumerate(rng.choice(len(images), len(images))):
                sample[f"{g}#{j}"], groups[f"{g}#{j}"] = values[images[i]], g
        s = statistic(sample, groups)
        if s is not None:
            stats.append(s)
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))] if stats else None


def _seconds(records: list[dict[str, Any]], name: str) -> float | None:
    if name in ("token_count", "soft_count") or name.startswith("baseline"):  # timed elsewhere, or not a reading
        return None
    key = "unconditional" if name.startswith("unconditional") else "prompted"
    if "learned" in name:
        key = "learned_m1"
    values = [r["seconds"][key] for r in records if key in r.get("seconds", {})]
    return mean_or_none(values)
