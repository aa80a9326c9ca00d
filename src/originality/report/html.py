"""Self-contained HTML reports: images inline as base64 PNG, every user string escaped."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from originality.method.signals import REGISTRY, headline
from originality.report.grids import grid_cell
from originality.report.intervals import mean_interval
from originality.report.plots import distance_curve
from originality.runs import write_text


def inline_png(image: Image.Image | Path) -> str:
    if isinstance(image, Path):
        data = image.read_bytes()
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}.pass{color:#1a7f37;font-weight:bold}.fail{color:#b42318}
img.px{image-rendering:pixelated}code{background:#f5f5f5;padding:1px 4px}
.samples{display:flex;flex-wrap:wrap;gap:6px}.samples figure{margin:0;width:96px;border:3px solid}
.samples figure.ok{border-color:#1a7f37}.samples figure.no{border-color:#b42318}
.samples figcaption{font-size:11px;padding:2px;line-height:1.2}
"""


SOURCES = {
    "user": "the prompt you gave",
    "reading": "the caption read off the image",
    "tokens": "the learned tokens",
    "domain": "the domain's prompt",
}


def meaning(name: str) -> str:
    """What a signal measures, in one line (from its entry in the signals' registry)."""
    signal = REGISTRY.get(name)
    return "" if signal is None else signal.meaning


def familiarity_section(familiarity: dict[str, Any] | None) -> str:
    """The familiarity signals in words and a small table (nothing when none were read)."""
    if not familiarity:
        return ""
    e = html.escape
    pct = familiarity.get("percentiles", {})
    lead = headline()
    top = pct.get(lead)
    reference = familiarity.get("reference", {})
    sentence = ""
    if top is not None:
        among = (reference.get("used") or {}).get(lead, reference.get("samples", "its"))
        sentence = (
            f"<p><b>More familiar to this model than {top:.0f}% of {among} images it draws by itself</b> "
            f"({e(lead.replace('_', ' '))}; 50% is typical of its own images, higher is more familiar).</p>"
        )
        if "drawn" in reference:
            sentence += (
                f"<p><small>Its reference: {reference['drawn']} samples drawn, {reference['read']} read by the "
                "detector; each percentile is read among the samples whose prompt came from the same source as "
                "this image's.</small></p>"
            )
    rows = "".join(
        f"<tr><td style='text-align:left'>{e(name)}</td><td>{value:.4f}</td>"
        f"<td>{'—' if name not in pct else f'{pct[name]:.0f}%'}</td>"
        f"<td style='text-align:left'>{e(meaning(name))}</td></tr>"
        for name, value in familiarity["signals"].items()
    )
    learned = familiarity.get("learned_token_gap") or {}
    learned_text = (
        "<p>Guidance gap of the learned tokens (no prompt needed): "
        + ", ".join(f"{e(k)} {v:.3f}" for k, v in learned.items())
        + "</p>"
        if learned
        else ""
    )
    calibrated = familiarity.get("calibrated")
    if calibrated:
        sentence = f"<p><b>In training frequency: {e(calibrated['statement'])}</b> ({e(calibrated['measure'])}, " + (
            f"a {calibrated['level']:.0%} interval for one image).</p>" + sentence
        )
    typical = familiarity.get("typicality")
    if typical and typical["flagged"]:
        sentence = (
            f"<p><b>Drawn unlike this model's training images</b> (typicality {typical['value']:.3f} &gt; "
            f"{typical['threshold']:.3f}): the signals are read on its canonical re-render, the elements read "
            "drawn by the renderer where they were read.</p>" + sentence
        )
    elif typical:
        sentence += (
            f"<p><small>Drawn as this model's training images are (typicality {typical['value']:.3f} &le; "
            f"{typical['threshold']:.3f}).</small></p>"
        )
    source = SOURCES.get(familiarity["prompt_source"], familiarity["prompt_source"])
    return (
        f"<h2>Familiarity</h2>{sentence}<p>Prompt: <code>{e(familiarity['prompt'])}</code> ({e(source)}).</p>"
        "<table><tr><th>signal</th><th>value</th><th>more familiar than</th><th>what it measures</th></tr>"
        f"{rows}</table>{learned_text}"
    )


def boxed(query: Image.Image, reading: dict[str, Any] | None, scale: int = 4) -> Image.Image:
    """The query enlarged, each element the detector read boxed: green when read surely, red when not."""
    canvas = query.convert("RGB").resize((query.width * scale, query.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for element in (reading or {}).get("elements", []):
        x0, y0, x1, y1 = (v * scale for v in element["box"])
        colour = (26, 127, 55) if element["confidence"] >= 0.9 else (180, 35, 24)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
    return canvas


def verdict_sentence(result: dict[str, Any]) -> str:
    """The verdict in one sentence a reader who is not an engineer can act on."""
    m_max = result["settings"]["config"]["max_tokens"]
    familiar = ""
    pct = ((result.get("familiarity") or {}).get("percentiles") or {}).get(headline())
    if pct is not None:
        familiar = f" It is more familiar to the model than {pct:.0f}% of the images the model draws by itself."
    if result["count"] is None:
        return (
            f"Original to this model: even {m_max} learned words do not let it redraw this image "
            f"(the most the search tries).{familiar}"
        )
    words = "one learned word" if result["count"] == 1 else f"{result['count']} learned words"
    return (
        f"{result['count']} token{'s' if result['count'] > 1 else ''}: this model needs {words} to redraw this "
        f"image; the fewer it needs, the more the image resembles what the model already knows.{familiar}"
    )


def evidence_section(verdict: dict[str, Any] | None) -> str:
    """The in-distribution check's verdict as a sentence, its evidence as a small table."""
    if not verdict:
        return ""
    e = html.escape
    ev = verdict["evidence"]
    outcome = "passed" if verdict["passed"] else "failed"
    if verdict["name"] == "positions":
        sentence = (
            f"In-distribution check {outcome}: of {ev['matching_samples']} samples holding the query's elements, "
            f"{ev['copies_of_query_layout']} copy its layout (at most {ev['max_copies']:.0%} may); the tokens "
            + ("did not memorise where things are." if verdict["passed"] else "memorised where things are.")
        )
    elif verdict["name"] == "editability":
        sentence = (
            f"In-distribution check {outcome}: edited prompts still show the {ev['concept']} in "
            f"{ev['shows_concept']:.0%} of samples (at least {ev['min_fraction']:.0%} needed)."
        )
    else:
        sentence = f"In-distribution check {verdict['name']} {outcome}."
    rows = "".join(
        f"<tr><td style='text-align:left'>{e(str(k).replace('_', ' '))}</td><td>{e(_plain(v))}</td></tr>"
        for k, v in ev.items()
    )
    return f"<p>{e(sentence)}</p><table>{rows}</table>"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return "—" if value is None else str(value)


def sample_figures(grid: Path, token: dict[str, Any]) -> str:
    """The samples of one token count, each framed matched (green) or not (red) with why in words,
    after a tally ("12 of 20 samples match the query; the others: colours swapped (5); missing square (3)")."""
    e = html.escape
    distances = token["distances"]
    columns = min(10, len(distances))
    why = token.get("why") or ["matched" if d == 0 else "not matched" for d in distances]
    sheet = Image.open(grid)
    figures, misses = [], Counter()
    for i, (d, reason) in enumerate(zip(distances, why, strict=True)):
        ok = d == 0
        if not ok:
            misses[reason] += 1
        # the shapes distance counts a sample whose shapes match whatever its colours: say both
        caption = reason if not ok or reason == "matched" else f"matched shapes ({reason})"
        cell = inline_png(grid_cell(sheet, i, columns=columns))
        figures.append(
            f"<figure class={'ok' if ok else 'no'}><img class=px src='{cell}'>"
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    tally = f"{len(distances) - sum(misses.values())} of {len(distances)} samples match the query"
    if misses:
        tally += "; the others: " + "; ".join(f"{reason} ({n})" for reason, n in misses.most_common())
    return f"<p>{e(tally)}.</p><div class=samples>{''.join(figures)}</div>"


def _binary(token: dict[str, Any]) -> bool:
    """Whether a token count's distances are per-sample matches (0) and misses (1)."""
    return bool(token.get("distances")) and all(d in (0, 1) for d in token["distances"])


def reading_section(reading: dict[str, Any] | None) -> str:
    """How the query was read: its elements and their confidence, or what the distance compares."""
    if not reading:
        return ""
    e = html.escape
    if reading.get("compares"):
        return f"<p>Read as: {e(reading['compares'])}.</p>"
    rows = "".join(
        f"<tr><td style='text-align:left'>{e(x['element'])}</td><td>{x['confidence']:.2f}</td>"
        f"<td>{e(', '.join(f'{v:.0f}' for v in x['box']))}</td></tr>"
        for x in reading["elements"]
    )
    verdict = (
        "<p class=pass>Read in full: every element at confidence 0.9 or more, nothing drawn outside them.</p>"
        if reading["readable"]
        else f"<p class=fail>Not read in full: {e(reading['reason'] or '')}.</p>"
    )
    return (
        "<h2>How the query was read</h2>" + verdict + "<table><tr><th>element</th><th>confidence</th>"
        f"<th>box (x0, y0, x1, y1)</th></tr>{rows}</table>"
    )


def score_report(result: dict[str, Any], query: Image.Image, folder: Path) -> Path:
    """``report.html`` for one scored image, from its result dict and the files in ``folder``."""
    e = html.escape
    name = e(str(result["image"]))
    reading = result.get("reading")
    if not result["per_m"]:  # no token count: --signals fast, or a query that could not be read
        if result["label"] == "unreadable":
            headline = (
                f"<h1><code>{name}</code> was not scored: unreadable</h1><p>The detector could not read this "
                "image in full, so a token count would describe another image. Nothing was scored; "
                "<code>--force</code> scores it anyway.</p>"
            )
        else:
            headline = f"<h1>Familiarity of <code>{name}</code></h1><p>No token count: <code>--signals fast</code>.</p>"
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>originality: {name}</title>
<style>{STYLE}</style></head><body>{headline}
<img class=px src='{inline_png(boxed(query, reading))}'>{reading_section(reading)}
{familiarity_section(result.get("familiarity"))}
<p>Versions: {e(json.dumps(result["versions"]))}</p></body></html>"""
        return write_text(folder / "report.html", page)
    rows = []
    for t in result["per_m"]:
        low, high = mean_interval(t.get("distances") or [t["distance"]])
        verdict = t.get("in_distribution")
        check = "—" if verdict is None else ("pass" if verdict["passed"] else "fail")
        rows.append(
            f"<tr><td>{t['m']}</td><td>{t['distance']:.3f} [{low:.2f}, {high:.2f}]</td>"
            f"<td>{e(check)}</td><td class={'pass' if t['passed'] else 'fail'}>{'yes' if t['passed'] else 'no'}</td>"
            f"<td>{t['inversion_steps']}{' (converged)' if t['stopped_early'] else ''}</td>"
            f"<td>{sum(t['seconds'].values()):.0f} s</td></tr>"
        )
    curve = distance_curve([result], folder / "distance_curve.png")
    sections = []
    for t in result["per_m"]:
        grid = folder / "samples" / f"m{t['m']}.png"
        evidence = t.get("in_distribution")
        ev = evidence_section(evidence)
        img = ""
        if grid.is_file():
            # a sample matches when its distance is 0 (elements and shapes: it holds the query's elements)
            img = sample_figures(grid, t) if _binary(t) else f"<img class=px src='{inline_png(grid)}'>"
        edits = folder / "samples" / f"m{t['m']}-edits.png"
        if edits.is_file():
            img += f"<p>edit prompts ({e(evidence['name'])}):</p><img class=px src='{inline_png(edits)}'>"
        sections.append(f"<h3>m = {t['m']}: distance {t['distance']:.3f}</h3>{img}{ev}")
    config = result["settings"]["config"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>originality: {name}</title>
<style>{STYLE}</style></head><body>
<h1>Originality of <code>{name}</code>: {e(result["label"])} token(s)</h1>
<p class=verdict>{e(verdict_sentence(result))}</p>
<details><summary>Settings</summary><p>Minimum tokens that reconstruct the image in-distribution:
<b>{e(result["label"])}</b> (soft count {result["soft_tokens"]:.2f}; "+" means none within M = {config["max_tokens"]}).
Distance <code>{e(str(config["distance"]))}</code>, threshold {config["threshold"]}, N = {config["samples"]} samples,
preset <code>{e(str(config["preset"]))}</code>, domain <code>{e(result["settings"]["domain"]["name"])}</code>
{"; <b>scored with --force although the query was not read in full</b>" if result.get("forced") else ""}.</p></details>
<img class=px src='{inline_png(boxed(query, reading))}'>{reading_section(reading)}
<table><tr><th>m</th><th>distance (mean, 95% interval)</th><th>in-distribution</th><th>passed</th>
<th>inversion steps</th><th>time</th></tr>{"".join(rows)}</table>
<img src='{inline_png(curve)}'>
{familiarity_section(result.get("familiarity"))}
{"".join(sections)}
<p>Versions: {e(json.dumps(result["versions"]))}</p></body></html>"""
    return write_text(folder / "report.html", page)


def batch_report(records: list[dict[str, Any]], out: Path, title: str = "originality scores") -> Path:
    """``report.html`` of a batch: one row per image (query, count, distances), and all curves."""
    e = html.escape
    results = []
    rows = []
    names = list(dict.fromkeys(n for r in records for n in r.get("signals", {})))
    for r in records:
        shown = r["image"] if r.get("row") is None else f"{r['image']} (row {r['row']})"
        if r.get("status") == "error":  # an input that failed: its reason, no folder
            rows.append(
                f"<tr><td style='text-align:left'>{e(shown)}</td><td></td><td class=fail><b>error</b></td>"
                f"<td>—</td>{'<td>—</td>' * len(names)}<td style='text-align:left'>{e(r['reason'])}</td></tr>"
            )
            continue
        folder = out / r["folder"]
        result_file = folder / "result.json"
        if result_file.is_file() and r["distances"]:
            results.append(json.loads(result_file.read_text()))
        distances = " ".join(f"{m}: {d:.2f}" for m, d in r["distances"].items())
        query = folder / "query.png"
        img = f"<img class=px width=64 src='{inline_png(query)}'>" if query.is_file() else ""
        soft = "—" if r["soft_tokens"] is None else f"{r['soft_tokens']:.2f}"
        signals = "".join(_signal_cell(r, name) for name in names)
        rows.append(
            f"<tr><td style='text-align:left'><a href='{e(r['folder'])}/report.html'>{e(shown)}</a></td>"
            f"<td>{img}</td><td><b>{e(r['label'])}</b></td><td>{soft}</td>{signals}"
            f"<td style='text-align:left'>{e(distances)}</td></tr>"
        )
    heads = "".join(
        f"<th>{e(name.replace('_', ' '))}<br><small>value (more familiar than)</small></th>" for name in names
    )
    curves = ""
    if results:
        plot = distance_curve(results, out / "distance_curves.png", labels=[r["image"] for r in results])
        curves = f"<img src='{inline_png(plot)}'>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{STYLE}</style></head><body><h1>{e(title)}</h1>
<p>Minimum tokens that reconstruct each image in-distribution ("+": none within M); the soft count
places an image between counts; distances by token count m. Each name links to its own report.</p>
<p><small>Click a column's head to sort by it.</small></p>
<table class=sortable><tr><th>image</th><th></th><th>tokens</th><th>soft</th>{heads}<th>distance by m</th></tr>
{"".join(rows)}</table>
<script>{SORT_SCRIPT}</script>
{curves}</body></html>"""
    return write_text(out / "report.html", page)


# Sorting by a column's head: numbers by value (the first number in a cell), text otherwise. Inline,
# like everything in a report: it works from a file with no network.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const table = th.closest("table"), rows = Array.from(table.rows).slice(1);
  const key = r => { const t = r.cells[col].innerText.trim(), n = parseFloat(t); return isNaN(n) ? t : n; };
  const up = table.dataset.col == col && table.dataset.dir == "up";
  rows.sort((a, b) => { const x = key(a), y = key(b); const c = x < y ? -1 : x > y ? 1 : 0; return up ? -c : c; });
  table.dataset.col = col; table.dataset.dir = up ? "down" : "up";
  rows.forEach(r => table.tBodies[0].appendChild(r));
}));
"""


def _signal_cell(record: dict[str, Any], name: str) -> str:
    value = record.get("signals", {}).get(name)
    if value is None:
        return "<td>—</td>"
    pct = record.get("percentiles", {}).get(name)
    return f"<td>{value:.3f}" + ("" if pct is None else f" ({pct:.0f}%)") + "</td>"


def generalization_report(summary: dict[str, Any], out: Path) -> Path:
    """``report.html`` of the generalization experiment: Fig. 3, the numbers, Fig. 12 and 13."""
    e = html.escape
    rows = []
    for level, v in summary["levels"].items():
        cells = "".join(
            f"<td>{v[k]['frequency']:.1%}</td><td>{v[k]['image_rate']:.1%}</td><td>{v[k]['elements_per_image']:.2f}</td>"
            f"<td>{v[k]['outside_spanning_set']:.1%}</td><td>{v[k]['vs_average_element']:.2f}</td>"
            for k in ("empty", "element")
        )
        rows.append(f"<tr><td>{e(level)}</td><td>{e(', '.join(v['variants']))}</td>{cells}</tr>")
    checks = "".join(f"<li>{e(k)}: <b>{e(str(v))}</b></li>" for k, v in summary["checks"].items())
    images = "".join(
        f"<h2>{e(title)}</h2><img class=px src='{inline_png(out / name)}'>"
        for title, name in (
            ("Fig. 3: generalization vs diversity", "fig3.png"),
            ("Fig. 12: the held-out element as drawn when prompted, per level", "fig12-quality.png"),
            ("Fig. 13: samples of the element prompt, per model", "fig13-samples.png"),
        )
        if (out / name).is_file()
    )
    config = summary["config"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>generalization</title>
<style>{STYLE}</style></head><body><h1>Generalization vs training diversity</h1>
<p>Preset <code>{e(config["preset"])}</code>: {config["images"]} training images per level, training preset
<code>{e(config["train"])}</code>, {config["samples"]} samples per prompt type at {config["inference_steps"]} steps,
detector confidence {config["detector_threshold"]}. <i>frequency</i>: held-out detections among all detections;
<i>image rate</i>: images holding the held-out element; <i>outside</i>: detections of elements the model's
data never held (unreadable samples rather than generalization); <i>vs average</i>: frequency times the
spanning set's size, 1 when the held-out element is drawn as often as an average element of the set.</p>
<ul>{checks}</ul>
<table><tr><th>level</th><th>variants</th><th>empty: frequency</th><th>image rate</th><th>elements/image</th>
<th>outside</th><th>vs average</th><th>element: frequency</th><th>image rate</th><th>elements/image</th>
<th>outside</th><th>vs average</th></tr>
{"".join(rows)}</table>
{images}</body></html>"""
    return write_text(out / "report.html", page)
