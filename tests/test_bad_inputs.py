"""Failures found by probing the tool as a new user would: each a one-line error, nothing lost."""

import json
import struct
import zlib

import pytest
from PIL import Image, ImageDraw

from originality.batch import list_inputs
from originality.cli import main
from originality.detection.detector import ElementDetector
from originality.errors import OriginalityError
from originality.images import open_header, to_rgb
from originality.method.query_reading import read_shapes_query
from originality.runs import read_json, write_json
from originality.shapes.queries import render_query


def png_claiming(path, width: int, height: int):
    """A PNG whose header claims ``width`` x ``height`` but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def one_line_error(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("side", [20000, 14000])
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, capsys, side):
    bomb = png_claiming(tmp_path / "bomb.png", side, side)
    expected = "sides must be between" if side > 16384 else "cannot read image"
    with pytest.raises(OriginalityError, match=expected):
        to_rgb(bomb)
    one_line_error(capsys, ["score", str(bomb), "--out", str(tmp_path / "o")], expected)
    one_line_error(capsys, ["detector", "detect", str(bomb), "--out", str(tmp_path / "d")], expected)
    assert not (tmp_path / "d").exists()
    if side > 16384:  # refused from its header, before any model loads: nothing written
        assert not (tmp_path / "o").exists()


def test_a_tiny_image_is_refused_by_the_detector_as_by_the_scorer(tmp_path, capsys):
    Image.new("RGB", (1, 1), "white").save(tmp_path / "dot.png")
    with pytest.raises(OriginalityError, match="sides must be between"):
        open_header(tmp_path / "dot.png")
    one_line_error(capsys, ["detector", "detect", str(tmp_path / "dot.png"), "--out", str(tmp_path / "d")], "1x1")
    assert not (tmp_path / "d").exists()  # nothing written for a failed call


def test_every_csv_row_is_checked_before_any_is_scored_and_named_by_row(tmp_path):
    Image.new("RGB", (32, 32), "white").save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "list.csv").write_text("image,caption\na.png,big red full circle\n,\nmissing.png,\nbroken.png,\n")
    queries = list_inputs(tmp_path / "list.csv")  # every problem found at once, none raised
    assert [q.problem for q in queries][0] is None
    assert queries[1].problem == "row 3: empty 'image'"
    assert queries[2].problem.startswith("row 4: no image file")
    assert queries[3].problem.startswith("row 5: cannot read image")
    (tmp_path / "list.csv").write_text("image,prompt\na.png,a red disc\n")
    assert list_inputs(tmp_path / "list.csv")[0].prompt == "a red disc"
    # Excel's "CSV UTF-8" starts with a byte-order mark; a header with no rows says so.
    (tmp_path / "list.csv").write_bytes("\ufeffimage\na.png\n".encode())
    assert [q.name for q in list_inputs(tmp_path / "list.csv")] == ["a.png"]
    (tmp_path / "list.csv").write_text("image\n")
    with pytest.raises(OriginalityError, match="has a header and no rows"):
        list_inputs(tmp_path / "list.csv")
    (tmp_path / "list.csv").write_text("picture\na.png\n")
    with pytest.raises(OriginalityError, match="needs an 'image' column"):
        list_inputs(tmp_path / "list.csv")


def test_a_bad_image_fails_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "q.png").write_bytes(b"\x89PNG broken")
    # The model named does not exist either: the image's error comes first, with no model loaded.
    one_line_error(capsys, ["score", str(tmp_path / "q.png"), "--model", str(tmp_path / "nope"), "--out",
                            str(tmp_path / "o")], "cannot read image")  # fmt: skip


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "2"])
def test_a_threshold_outside_its_range_is_refused(tmp_path, capsys, value):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "q.png")
    one_line_error(capsys, ["score", str(tmp_path / "q.png"), "--threshold", value, "--out", str(tmp_path / "o")],
                   "threshold must be a number in [0, 1]")  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_json_files_are_strict_json(tmp_path):
    write_json(tmp_path / "x.json", {"rho": float("nan"), "values": [1.0, float("inf")]})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_json(tmp_path / "x.json") == {"rho": None, "values": [1.0, None]}
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


def test_data_make_refuses_a_size_past_the_renderers_range(tmp_path, capsys):
    one_line_error(capsys, ["data", "make", "--spec", "originality-mix", "--n", "5", "--size", "100000",
                            "--out", str(tmp_path / "d")], "--size must be between 8 and 1024")  # fmt: skip


def test_data_make_never_replaces_the_current_folder_or_a_parent(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    for out in (".", "..", str(tmp_path)):
        one_line_error(capsys, ["data", "make", "--spec", "originality-mix", "--n", "5", "--out", out,
                                "--overwrite"], "is the current folder, a parent of it")  # fmt: skip
    assert (work / "notes.txt").read_text() == "mine"


def test_a_missing_model_says_so_without_pointing_at_a_hidden_trace(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 64), "white").save(tmp_path / "q.png")
    assert main(["score", "q.png", "--model", "models/mine", "--out", "o", "--signals", "none"]) == 2
    err = capsys.readouterr().err
    assert "no local folder" in err and "stacktrace" not in err and err.count("\n") == 1


def pure_colour_query(path, scribble: bool = False):
    """The probe's query: a pure red square and a pure green circle, drawn by hand; ``scribble``
    adds a black stroke that is no element."""
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 24, 24), fill=(255, 0, 0))
    draw.ellipse((36, 36, 53, 53), fill=(0, 255, 0))
    if scribble:
        draw.line((40, 6, 58, 20), fill=(0, 0, 0), width=3)
    image.save(path)
    return path


def test_the_probes_pure_colour_query_is_read_exactly(tmp_path):
    reading = read_shapes_query(Image.open(pure_colour_query(tmp_path / "q.png")), ElementDetector.load())
    assert reading.readable, reading.reason
    assert sorted(e["element"] for e in reading.elements) == ["big green full circle", "big red full square"]


def test_a_query_read_in_part_is_unreadable_never_plus(tmp_path, capsys):
    query = pure_colour_query(tmp_path / "q.png", scribble=True)
    reading = read_shapes_query(Image.open(query), ElementDetector.load())
    assert not reading.readable and "drawn pixels lie outside every element read" in reading.reason
    # The shipped model, but no inversion: the verdict comes before any.
    argv = ["score", str(query), "--out", str(tmp_path / "o"), "--signals", "none"]
    one_line_error(capsys, argv, "q.png is unreadable:")
    record = json.loads((tmp_path / "o" / "results.jsonl").read_text())
    assert record["label"] == "unreadable" and record["count"] is None and "reading" in record
    result = json.loads((tmp_path / "o" / "q.png" / "result.json").read_text())
    assert result["label"] == "unreadable" and result["per_m"] == [] and not result["reading"]["readable"]
    assert "was not scored: unreadable" in (tmp_path / "o" / "q.png" / "report.html").read_text()


def test_rendered_queries_are_readable(tmp_path):
    detector = ElementDetector.load()
    for group in ("common", "rare", "unseen"):
        image, text = render_query(group, 0, 2024)
        reading = read_shapes_query(image, detector)
        assert reading.readable, reading.reason
        assert sorted(e["element"] for e in reading.elements) == sorted(text.split(" and "))
