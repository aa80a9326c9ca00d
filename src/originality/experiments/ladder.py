"""The frequency-ladder readout: which measure reads how often a model saw a pair?

On a model trained on the frequency ladder (``shapes/frequency_ladder.py``: 45 pairs at 9 exact
frequencies, every element equally common, a duplication ladder), each pair is rendered afresh
(new layouts) from two query seeds, one **for fitting** and one **held out**; each element alone
from the same seeds; and, for the duplication ladder, the exact training image beside a fresh render
of its caption. Every image is read on one grid of timesteps and noises by the ladder model and, when
given, by a **background model** trained on the same pairs at one shared frequency (both on one frozen
VAE). Measures, each lower = more familiar and each marked by what it needs:

* every registered signal (``method/signals.py``) with the query's reading as its prompt (``reading``,
  automatic on shapes) and with the true caption (``prompt``: what a user's prompt would give);
* ``likelihood_ratio``: unconditional loss of the ladder model minus the background model's (needs a
  second model; nothing else) and ``gap_ratio``, the same for the guidance gap read with the reading;
* ``token_count`` (the ``quick`` preset) on a few queries of a few levels (``--no-tokens`` skips it).

Beside each measure two baselines: **elements-only** (the sum of the pair's two elements read alone:
knows elements, not pairs) and the **caption lookup** (the true frequency: the ceiling, rho 1).

Estimands (pre-registered in ``results/ladder/preregistration.md``), on the held-out seed, the unit
being the pair, each with a bootstrap that redraws pairs within levels: Spearman of per-pair means
against frequency over all levels (0% last), the slope against log10 frequency (non-zero levels),
AUROC 1% vs 0.1% and 0.1% vs 0% over images, and per duplication level the AUROC of the copy
against its fresh render. Signs: positive means "more frequent reads as more familiar".

The experiment ends by writing ``familiarity-calibration.json`` into the ladder model's folder:
the candidate measure (needs nothing, the reading, or the background model) with the best Spearman
on the fitting seed, a line from it to log10 frequency, and a 90% prediction interval for one image
from the fitting residuals, with its coverage on the held-out seed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments import positive_control
from originality.experiments.runner import Experiment, run_experiment
from originality.method.calibrated import CALIBRATION
from originality.method.familiarity import domain_prompt
from originality.method.search import score_preset
from originality.method.signals import REGISTRY, SignalConfig, from_readings, query_latents, readings, signal_grid
from originality.models.pipeline import check_same_latent_space, load_pipeline, model_identity
from originality.report.plots import ladder_plot
from originality.scorer import Scorer
from originality.shapes.captions import caption, parse_caption
from originality.shapes.dataset import dataset_identity, read_info, render_example
from originality.shapes.rendering import render, sample_layout
from originality.shapes.specs import DatasetSpec
from originality.stats import auroc, bootstrap_interval, mean_or_none, rho, slope

READINGS = "readings.jsonl"
TOKENS = "tokens.jsonl"
SECOND_MODEL = ("likelihood_ratio", "gap_ratio")


@dataclass
class LadderConfig:
    model: str = field(default="", metadata={"help": "the ladder model's pipeline folder"})
    background_model: str = field(default="", metadata={"help": "the background model (for the likelihood ratio)"})
    data: str = field(default="", metadata={"help": "the ladder model's training dataset folder"})
    queries: int = field(default=4, metadata={"help": "fresh renders per pair (and per element) per seed"})
    fit_seed: int = field(default=12_000_001, metadata={"help": "the query seed a measure is chosen and fitted on"})
    held_out_seed: int = field(default=12_000_002, metadata={"help": "the query seed every estimand is read on"})
    grid_seed: int = field(default=0, metadata={"help": "the seed of the grid's noises"})
    timesteps: int = field(default=64, metadata={"help": "grid timesteps (the signals' default)"})
    detector_threshold: float = field(
        default_factory=lambda: score_preset("quick").detector_threshold,
        metadata={"help": "the confidence that reads a query's prompt"},
    )
    tokens: bool = field(default=True, metadata={"help": "the token count on a few levels (slow)"})
    token_queries: int = field(default=3, metadata={"help": "queries per pair scored for the token count"})
    token_levels: str = field(default="2.15%,0.1%,0%", metadata={"help": "levels scored for the token count"})
    positive_read: int = field(default=3000, metadata={"help": "the positive control's read samples (0: skip it)"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws (pairs redrawn within levels)"})
    seed: int = field(default=0, metadata={"help": "the bootstrap's seed"})

    def validate(self) -> LadderConfig:
        if not self.model or not self.data:
            raise OriginalityError("the ladder experiment needs --model (the ladder model) and --data (its dataset)")
        for path in (self.model, self.background_model):
            if path and not (Path(path) / "model_index.json").is_file():
                raise OriginalityError(f"{path} is not a pipeline folder (no model_index.json)")
        info = read_info(self.data)
        if not info["spec"].get("planned"):
            raise OriginalityError(f"{self.data} is not a frequency-ladder dataset (its spec plans no pairs)")
        for name in ("queries", "token_queries", "timesteps", "bootstrap"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise OriginalityError(f"--{name.replace('_', '-')} must be an integer >= 1")
        if self.fit_seed == self.held_out_seed:
            raise OriginalityError("the fitting and the held-out query seeds must differ")
        if not (math.isfinite(self.detector_threshold) and 0 < self.detector_threshold <= 1):
            raise OriginalityError(f"--detector-threshold must be in (0, 1], got {self.detector_threshold}")
        if self.positive_read < 0:
            raise OriginalityError("--positive-read must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def grid(self) -> SignalConfig:
        return SignalConfig(timesteps=self.timesteps, seed=self.grid_seed)


PRESETS = {
    "default": LadderConfig,
    # tests and a first look: few queries, a short grid, no tokens
    "quick": lambda: LadderConfig(queries=1, timesteps=8, tokens=False, positive_read=0, bootstrap=100),
}


# -- what is read ----------------------------------------------------------------------------------
@dataclass
class Query:
    id: str
    kind: str  # pair | element | copy | fresh
    key: str  # the pair ("a + b") or the element's phrase
    level: str  # the planned entry's name ("ladder 1%", "copies x64"), or "element"
    frequency: float  # the pair's share of the training images (elements: their own)
    image: Image.Image
    caption: str


def ladder_entries(spec: DatasetSpec, n: int) -> list[tuple[str, str, float, list[str]]]:
    """(level, pair key, share of the training images, phrases) of every planned pair."""
    counts = spec.plan_counts(n)["planned"]
    return [
        (p.name, " + ".join(sorted(p.elements)), k / n, list(p.elements))
        for p, k in zip(spec.planned, counts, strict=True)
    ]


def render_elements(phrases: list[str], rng: np.random.Generator, size: int) -> Image.Image:
    elements = [parse_caption(p)[0] for p in phrases]
    return render(sample_layout(elements, size, rng), size)


def queries_for(config: LadderConfig, seed: int) -> list[Query]:
    """Fresh renders of every pair and element from ``seed``; on the held-out seed also the copies."""
    info = read_info(config.data)
    spec, n, size = DatasetSpec.from_dict(info["spec"]), info["n"], info["size"]
    out: list[Query] = []
    entries = ladder_entries(spec, n)
    for index, (level, key, frequency, phrases) in enumerate(entries):
        if level.startswith("copies"):
            continue
        for i in range(config.queries):
            rng = np.random.default_rng([seed, 1, index, i])
            image = render_elements(phrases, rng, size)
            out.append(Query(f"{seed}/pair-{index:02d}-{i}", "pair", key, level, frequency, image, caption_of(phrases)))
    for j, element in enumerate(spec.allowed):
        share = _element_share(spec, n, element.phrase)
        for i in range(config.queries):
            rng = np.random.default_rng([seed, 2, j, i])
            image = render_elements([element.phrase], rng, size)
            out.append(Query(f"{seed}/element-{j:02d}-{i}", "element", element.phrase, "element", share, image,
                             element.phrase))  # fmt: skip
    if seed == config.held_out_seed:
        plan = spec.plan(n, info["seed"])
        for index, (level, key, frequency, phrases) in enumerate(entries):
            if not level.startswith("copies"):
                continue
            where = int(np.flatnonzero(plan == index)[0])  # every copy is the same image
            jitter = {"colour_jitter": info.get("colour_jitter", False), "size_jitter": info.get("size_jitter", False)}
            row = render_example(spec, where, info["seed"], size, plan=plan, **jitter)
            copy = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
            fresh = render_elements(phrases, np.random.default_rng([seed, 3, index]), size)
            text = caption_of(phrases)
            out.append(Query(f"{seed}/copy-{index:02d}", "copy", key, level, frequency, copy, text))
            out.append(Query(f"{seed}/fresh-{index:02d}", "fresh", key, level, frequency, fresh, text))
    return out


def caption_of(phrases: list[str]) -> str:
    return caption([parse_caption(p)[0] for p in phrases])


def _element_share(spec: DatasetSpec, n: int, phrase: str) -> float:
    counts = spec.plan_counts(n)
    element = parse_caption(phrase)[0]
    planned = sum(k for p, k in zip(spec.planned, counts["planned"], strict=True) if phrase in p.elements)
    return (planned + counts["filler"].get(element, 0)) / n


def read_query(pipelines: dict[str, Any], query: Query, grid_config: SignalConfig, detector, threshold: float):
    """Every measure of one query by each model: each registered signal with the reading's prompt and
    with the true caption (on one grid: the same timesteps and noises for both models)."""
    found = detector.detect([query.image], threshold=threshold)[0]
    reading = caption([d.element for d in found]) if found else None
    prompt = reading or domain_prompt(load_domain("shapes"))
    values: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    latents = query_latents(next(iter(pipelines.values())), [query.image])  # one VAE for both
    for name, pipeline in pipelines.items():
        started = time.perf_counter()
        grid = signal_grid(pipeline, grid_config)
        by_reading = readings(pipeline, latents, [prompt], grid)
        # Read as its caption: the same numbers when the reading is the caption (most queries).
        by_caption = by_reading if prompt == query.caption else readings(pipeline, latents, [query.caption], grid)
        values[name] = {}
        for signal in REGISTRY.values():
            values[name][signal.name] = float(from_readings(by_reading, signal.name, grid)[0])
            if signal.needs == "prompt":
                values[name][f"{signal.name}@prompt"] = float(from_readings(by_caption, signal.name, grid)[0])
        seconds[name] = time.perf_counter() - started
    return {"reading": reading, "values": values, "seconds": seconds}


# -- run --------------------------------------------------------------------------------------------
def started_by_its_positive_control(out: Path) -> bool:
    """Whether ``out`` holds only the positive control, run alone first (``experiment positive-control
    --out OUT/positive-control``): the ladder run resumes it (the control's own settings are checked)."""
    return {p.name for p in out.iterdir() if not p.name.startswith(".")} == {"positive-control"}


def run(out: Path, config: LadderConfig, progress: bool) -> None:
    if config.positive_read:
        control = positive_control.EXPERIMENT.config(
            model=config.model, data=config.data, read=config.positive_read, detector_threshold=0.5
        )
        run_experiment(positive_control.EXPERIMENT, out / "positive-control", control, progress=progress)
    pipelines = {"ladder": load_pipeline(config.model)}
    if config.background_model:
        pipelines["background"] = load_pipeline(config.background_model)
        check_same_latent_space(pipelines["ladder"], pipelines["background"])
    detector = ElementDetector.load(threshold=config.detector_threshold)
    done = {r["id"] for r in runs.read_jsonl(out / READINGS)}
    for seed in (config.fit_seed, config.held_out_seed):
        todo = [q for q in queries_for(config, seed) if q.id not in done]
        for q in tqdm(todo, desc=f"ladder readings, seed {seed}", disable=not progress):
            record = {"id": q.id, "seed": seed, "kind": q.kind, "key": q.key, "level": q.level,
                      "frequency": q.frequency, "caption": q.caption}  # fmt: skip
            record.update(read_query(pipelines, q, config.grid(), detector, config.detector_threshold))
            runs.append_jsonl(out / READINGS, record)
    if config.tokens:
        _token_counts(out, config, pipelines["ladder"], progress)


def _token_counts(out: Path, config: LadderConfig, pipeline, progress: bool) -> None:
    levels = {f"ladder {lv.strip()}" for lv in config.token_levels.split(",") if lv.strip()}
    done = {r["id"] for r in runs.read_jsonl(out / TOKENS)}
    chosen = [
        q
        for q in queries_for(dataclasses.replace(config, queries=config.token_queries), config.held_out_seed)
        if q.kind == "pair" and q.level in levels and q.id not in done
    ]
    scorer = Scorer(pipeline, score_preset("quick", signals="none"), progress=False)
    for q in tqdm(chosen, desc="token counts", disable=not progress):
        started = time.perf_counter()
        result = scorer.score(q.image, name=q.id)
        count = scorer.config.max_tokens + 1 if result.count is None else result.count
        runs.append_jsonl(out / TOKENS, {"id": q.id, "key": q.key, "level": q.level, "frequency": q.frequency,
                                         "label": result.label, "token_count": count,
                                         "seconds": time.perf_counter() - started})  # fmt: skip


# -- summary ----------------------------------------------------------------------------------------
def measures_of(record: dict[str, Any]) -> dict[str, float]:
    """One record's measures, the two-model ones included when the background was read."""
    ladder = record["values"]["ladder"]
    out = dict(ladder)
    background = record["values"].get("background")
    if background is not None:
        out["likelihood_ratio"] = ladder["unconditional_loss"] - background["unconditional_loss"]
        out["gap_ratio"] = ladder["guidance_gap"] - background["guidance_gap"]
    return out


def needs_of(name: str) -> str:
    if name in SECOND_MODEL:
        return "a second model"
    if name == "token_count":
        return "nothing"
    base, _, variant = name.partition("@")
    if variant == "prompt":
        return "a user's prompt"
    return "nothing" if REGISTRY[base].needs == "nothing" else "the query's reading"


def summarise(out: Path, config: LadderConfig) -> dict[str, Any]:
    records = runs.read_jsonl(out / READINGS)
    held = [r for r in records if r["seed"] == config.held_out_seed]
    fit = [r for r in records if r["seed"] == config.fit_seed]
    names = sorted(measures_of(held[0])) if held else []
    summary: dict[str, Any] = {"measures": {}, "duplication": {"copies": {}}}
    for name in names:
        summary["measures"][name] = {"needs": needs_of(name), **estimands(held, name, config)}
        summary["measures"][name]["fit_rho"] = estimands(fit, name, config, draws=0)["rho"]
        summary["measures"][name]["seconds_per_image"] = seconds_per_image(records, name)
    tokens = runs.read_jsonl(out / TOKENS)
    if tokens:
        as_records = [{"kind": "pair", "key": t["key"], "level": t["level"], "frequency": t["frequency"],
                       "measures": {"token_count": float(t["token_count"])}} for t in tokens]  # fmt: skip
        summary["measures"]["token_count"] = {
            "needs": "nothing",
            "descriptive": True,  # 3 levels, a few queries each
            **estimands(as_records, "token_count", config),
            "seconds_per_image": mean_or_none([t["seconds"] for t in tokens if "seconds" in t]),
        }
    for name in names:
        summary["duplication"]["copies"][name] = duplication(held, name)
    control = out / "positive-control" / "summary.json"
    if control.is_file():
        saved = runs.read_json(control)
        summary["positive_control"] = saved["positive_control"]
    summary["calibration"] = calibrate(fit, held, summary, config)
    if summary["calibration"] is not None:
        runs.write_json(Path(config.model) / CALIBRATION, summary["calibration"])
    return summary


def seconds_per_image(records: list[dict[str, Any]], name: str) -> float | None:
    """What a measure costs per image: the reading by the model it needs (one pass reads every
    signal of that model, so one-model measures share it), both models' for a two-model measure."""
    models = ("ladder", "background") if name in SECOND_MODEL else ("ladder",)
    timed = [r["seconds"] for r in records if set(models) <= set(r.get("seconds", {}))]
    return mean_or_none([sum(t[m] for m in models) for t in timed])


def _value(record: dict[str, Any], name: str) -> float:
    return record["measures"][name] if "measures" in record else measures_of(record)[name]


def pair_means(records: list[dict[str, Any]], name: str) -> dict[str, tuple[str, float, float]]:
    """pair -> (level, frequency, mean measure) over its fresh renders."""
    values: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, float]] = {}
    for r in records:
        if r["kind"] != "pair":
            continue
        values[r["key"]].append(_value(r, name))
        info[r["key"]] = (r["level"], r["frequency"])
    return {k: (info[k][0], info[k][1], float(np.mean(v))) for k, v in values.items()}


def element_baseline(records: list[dict[str, Any]], name: str) -> dict[str, float]:
    """pair -> the sum of its two elements' mean readings alone (knows elements, not pairs)."""
    alone: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["kind"] == "element" and name in measures_of(r):
            alone[r["key"]].append(measures_of(r)[name])
    means = {k: float(np.mean(v)) for k, v in alone.items()}
    if not means:
        return {}
    out = {}
    for r in records:
        if r["kind"] == "pair":
            a, b = r["key"].split(" + ")
            if a in means and b in means:
                out[r["key"]] = means[a] + means[b]
    return out


def estimands(records: list[dict[str, Any]], name: str, config: LadderConfig, draws: int | None = None):
    """Spearman and slope over pairs, AUROCs over images, with a bootstrap over pairs within levels;
    each beside the elements-only baseline. Positive: more frequent reads as more familiar."""
    draws = config.bootstrap if draws is None else draws
    means = pair_means(records, name)
    if not means:
        return {"rho": None}
    baseline = element_baseline(records, name)

    def rho_of(keys: list[str], source: dict[str, float] | None = None) -> float | None:
        values = [-(source[k] if source is not None else means[k][2]) for k in keys if source is None or k in source]
        freqs = [means[k][1] for k in keys if source is None or k in source]
        return rho(freqs, values)

    def slope_of(keys: list[str]) -> float | None:
        kept = [k for k in keys if means[k][1] > 0]
        return slope([math.log10(means[k][1]) for k in kept], [-means[k][2] for k in kept])

    pairs = list(means)
    levels = {k: means[k][0] for k in pairs}
    result: dict[str, Any] = {
        "pairs": len(pairs),
        "rho": rho_of(pairs),
        "slope": slope_of(pairs),
        "baseline_rho": rho_of(pairs, baseline) if baseline else None,
        "caption_lookup_rho": 1.0,
        "auroc": {
            "1%<0.1%": _auroc_levels(records, name, "ladder 1%", "ladder 0.1%"),
            "0.1%<0%": _auroc_levels(records, name, "ladder 0.1%", "ladder 0%"),
        },
        "level_means": _level_means(means),
    }
    if draws:
        result["rho_ci"] = bootstrap_interval(levels, rho_of, draws=draws, seed=config.seed)
        result["slope_ci"] = bootstrap_interval(levels, slope_of, draws=draws, seed=config.seed)
        if baseline:

            def above(sample: list[str]) -> float | None:
                a, b = rho_of(sample), rho_of(sample, baseline)
                return None if a is None or b is None else a - b

            result["above_baseline_ci"] = bootstrap_interval(levels, above, draws=draws, seed=config.seed)
    return result


def _auroc_levels(records, name: str, frequent: str, rare: str) -> float | None:
    low = [_value(r, name) for r in records if r["kind"] == "pair" and r["level"] == frequent]
    high = [_value(r, name) for r in records if r["kind"] == "pair" and r["level"] == rare]
    return auroc(low, high)


def _level_means(means: dict[str, tuple[str, float, float]]) -> dict[str, float]:
    by_level: dict[str, list[float]] = defaultdict(list)
    for level, _, value in means.values():
        by_level[level].append(value)
    return {level: float(np.mean(v)) for level, v in by_level.items()}


def duplication(records: list[dict[str, Any]], name: str) -> dict[str, float | None]:
    """Per copies level: P(the exact training image reads more familiar than a fresh render)."""
    out = {}
    levels = sorted({r["level"] for r in records if r["kind"] == "copy"}, key=lambda s: int(s.split("x")[1]))
    for level in levels:
        copy = [_value(r, name) for r in records if r["kind"] == "copy" and r["level"] == level]
        fresh = [_value(r, name) for r in records if r["kind"] == "fresh" and r["level"] == level]
        out[level] = auroc(copy, fresh)
    return out


def calibrate(fit, held, summary: dict[str, Any], config: LadderConfig) -> dict[str, Any] | None:
    """The measure a user can have with no prompt that best grades frequency on the fitting seed,
    mapped to training frequency, with a 90% prediction interval for one image."""
    candidates = {
        n: m["fit_rho"]
        for n, m in summary["measures"].items()
        if m.get("fit_rho") is not None
        and m["needs"] in ("nothing", "the query's reading", "a second model")
        and n != "token_count"
    }
    if not candidates:
        return None
    name = max(candidates, key=lambda n: candidates[n])
    xs, ys = _fit_points(fit, name)
    if len(set(xs)) < 2:
        return None
    b = slope(xs, ys)
    a = float(np.mean(ys) - b * np.mean(xs))
    residuals = np.asarray(ys) - (a + b * np.asarray(xs))
    low, high = (float(v) for v in np.quantile(residuals, [0.05, 0.95]))
    hx, hy = _fit_points(held, name)
    predicted = a + b * np.asarray(hx)
    covered = float(np.mean((np.asarray(hy) >= predicted + low) & (np.asarray(hy) <= predicted + high))) if hx else None
    frequencies = [10**y for y in ys]
    return {
        "measure": name,
        "needs": summary["measures"][name]["needs"],
        "fit_rho": candidates[name],
        "log10_frequency": {"intercept": a, "slope": b},
        "interval": {"low": low, "high": high, "level": 0.9},
        "range": [min(frequencies), max(frequencies)],
        "held_out_coverage": covered,
        "grid": config.grid().to_dict(),
        "model": model_identity(config.model),
        "background_model": model_identity(config.background_model) if config.background_model else None,
    }


def _fit_points(records, name: str) -> tuple[list[float], list[float]]:
    """(measure, log10 frequency) of every pair image of a non-zero level."""
    kept = [r for r in records if r["kind"] == "pair" and r["frequency"] > 0]
    return [_value(r, name) for r in kept], [math.log10(r["frequency"]) for r in kept]


def figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    return [ladder_plot(summary, out / "ladder.png")]


def table(summary: dict[str, Any]) -> str:
    head = f"{'measure':34s} {'needs':20s} {'rho':>6s} {'95%':>15s} {'baseline':>8s}"
    lines = [f"{head} {'1%<0.1%':>8s} {'0.1%<0%':>8s} {'s/img':>6s}"]
    for name, m in sorted(summary["measures"].items(), key=lambda kv: -(kv[1].get("rho") or -9)):
        ci = m.get("rho_ci")
        lines.append(
            f"{name:34s} {m['needs']:20s} {_f(m.get('rho')):>6s} "
            f"{'' if not ci else f'[{ci[0]:.2f}, {ci[1]:.2f}]':>15s} {_f(m.get('baseline_rho')):>8s} "
            f"{_f(m.get('auroc', {}).get('1%<0.1%')):>8s} {_f(m.get('auroc', {}).get('0.1%<0%')):>8s} "
            f"{_f(m.get('seconds_per_image')):>6s}"
        )
    cal = summary.get("calibration")
    if cal:
        lines.append(
            f"calibration: {cal['measure']} (fit rho {cal['fit_rho']:.2f}); held-out coverage of the 90% interval "
            f"{_f(cal['held_out_coverage'])}"
        )
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def identity(config: LadderConfig) -> dict[str, Any]:
    return {
        "model": model_identity(config.model),
        "background_model": model_identity(config.background_model) if config.background_model else None,
        "detector": detector_identity(),
        "dataset": dataset_identity(config.data),
    }


EXPERIMENT = Experiment(
    name="ladder",
    title="Frequency ladder: which measure reads how often the model saw a pair",
    presets=PRESETS,
    run=run,
    summarise=summarise,
    table=table,
    figures=figures,
    identity=identity,
    grows=("queries", "tokens", "token_queries", "token_levels"),  # a run without token counts gains them later
    adopt=started_by_its_positive_control,
)
