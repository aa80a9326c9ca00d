"""The reports as a parser reads them: every image embedded, every user string escaped, no request out."""

from html.parser import HTMLParser

from PIL import Image

from originality.report.html import batch_report, score_report

HOSTILE = "<script>alert(1)</script>&.png"


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.sources, self.links, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "src" in attrs:
            self.sources.append(attrs["src"])
        if "href" in attrs:
            self.links.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def result(label="unreadable"):
    reading = {
        "readable": False,
        "elements": [{"element": "big green full circle", "box": [36.0, 36.0, 53.0, 53.0], "confidence": 0.94}],
        "reason": "big red full square read at only 0.39 (< 0.9); <b>bold</b>",
        "compares": None,
    }
    return {
        "image": HOSTILE,
        "count": None,
        "label": label,
        "soft_tokens": None,
        "per_m": [],
        "reading": reading,
        "familiarity": {
            "signals": {"guidance_gap": 1.2, "unconditional_loss": 0.19},
            "percentiles": {"guidance_gap": 83.0},
            "prompt": "<img src=http://evil.example/x.png>",
            "prompt_source": "user",
            "reference": {"samples": 64, "prompt": ""},
        },
        "versions": {"originality": "0.1.0"},
    }


def check(page: Page, scripts: int = 0) -> None:
    assert page.tags.count("script") == scripts  # the report's own, never one from a user string
    assert page.sources and all(s.startswith("data:image/png;base64,") for s in page.sources)
    assert not [link for link in page.links if "://" in link]
    assert HOSTILE in "".join(page.text)  # shown, as text


def test_an_image_report_embeds_everything_and_escapes_user_strings(tmp_path):
    query = Image.new("RGB", (64, 64), "white")
    page = parse(score_report(result(), query, tmp_path))
    check(page)
    text = "".join(page.text)
    assert "was not scored: unreadable" in text and "<b>bold</b>" in text and "than 83% of 64 images" in text


def test_a_batch_report_embeds_everything_and_escapes_user_strings(tmp_path):
    folder = tmp_path / "image"
    folder.mkdir()
    Image.new("RGB", (64, 64), "white").save(folder / "query.png")
    record = {"image": HOSTILE, "folder": "image", "label": "unreadable", "soft_tokens": None, "distances": {},
              "signals": {"guidance_gap": 1.2}, "percentiles": {"guidance_gap": 83.0}}  # fmt: skip
    page = parse(batch_report([record], tmp_path))
    check(page, scripts=1)  # the column sorter
    assert "1.200 (83%)" in "".join(page.text)


def test_each_sample_says_whether_it_matched_and_why(tmp_path):
    from originality.report.grids import image_grid

    samples = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue", "white")]
    (tmp_path / "samples").mkdir()
    image_grid(samples, columns=4, cell=96).save(tmp_path / "samples" / "m1.png")
    why = ["matched", "colours swapped", "missing square", "colours swapped"]
    token = {"m": 1, "distance": 0.75, "distances": [0.0, 1.0, 1.0, 1.0], "why": why, "in_distribution": None,
             "passed": False, "inversion_steps": 10, "stopped_early": False, "seconds": {"inversion": 1.0}}  # fmt: skip
    scored = result(label="+") | {"count": None, "soft_tokens": 1.0, "per_m": [token]}
    scored["settings"] = {
        "config": {"max_tokens": 1, "distance": "elements", "threshold": 0.5, "samples": 4, "preset": "quick"},
        "domain": {"name": "shapes"},
    }
    page = parse(score_report(scored, Image.new("RGB", (64, 64), "white"), tmp_path))
    check(page)
    text = "".join(page.text)
    assert "1 of 4 samples match the query; the others: colours swapped (2); missing square (1)." in text
    assert page.tags.count("figcaption") == 4
    html_text = (tmp_path / "report.html").read_text()
    assert html_text.count("<figure class=ok>") == 1 and html_text.count("<figure class=no>") == 3
