import numpy as np
import pytest

from originality.shapes import ALL_ELEMENTS, Element
from originality.shapes.rendering import cell_side, place, render, sample_layout
from originality.shapes.vocabulary import RGB


def ink_mask(image) -> np.ndarray:
    """Pixels that are not (almost) white."""
    return (np.asarray(image, dtype=np.int16) < 235).any(axis=-1)


@pytest.mark.parametrize("size", [64, 256])
def test_label_boxes_match_the_drawn_pixels(size):
    rng = np.random.default_rng(0)
    for element in ALL_ELEMENTS:
        (p,) = sample_layout([element], size, rng)
        ys, xs = np.nonzero(ink_mask(render([p], size)))
        drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # Anti-aliasing may drop a faint edge pixel (or add one): one pixel of slack.
        assert np.allclose(drawn, p.bbox, atol=1.01), (element, drawn, p.bbox)


def test_elements_lie_wholly_inside_the_canvas_and_do_not_overlap():
    rng = np.random.default_rng(1)
    for _ in range(200):
        elements = [ALL_ELEMENTS[i] for i in rng.integers(0, 60, size=6)]
        placed = sample_layout(elements, 64, rng)
        for p in placed:
            x0, y0, x1, y1 = p.bbox
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        for i, a in enumerate(placed):
            for b in placed[i + 1 :]:
                gap = (cell_side(a.element, 64) + cell_side(b.element, 64)) / 2
                assert max(abs(a.centre[0] - b.centre[0]), abs(a.centre[1] - b.centre[1])) >= gap


def test_colour_is_what_the_label_says():
    for element in ALL_ELEMENTS:
        image = np.asarray(render([place(element, (32, 32), 64)], 64), dtype=float)
        mask = ink_mask(image)
        # The most saturated pixels carry the colour; compare with each palette entry.
        mean = image[mask].mean(axis=0)
        nearest = min(RGB, key=lambda c: np.linalg.norm(np.asarray(RGB[c]) - mean))
        assert nearest == element.colour, element


def coverage(image) -> float:
    """Total ink: anti-aliased edge pixels count in proportion to their darkness."""
    return float((255 - np.asarray(image, dtype=float).min(axis=-1)).sum())


@pytest.mark.parametrize("size", [64, 256])
def test_empty_elements_are_outlines_with_a_hole(size):
    for shape in ("square", "circle", "triangle", "hexagon", "star"):
        for s in ("big", "small"):
            full, empty = (
                coverage(render([place(Element(shape, "red", s, t), (size / 2, size / 2), size)], size))
                for t in ("full", "empty")
            )
            assert 0.2 * full < empty < 0.65 * full, (shape, s, empty / full)


def test_rendering_is_anti_aliased_and_works_at_512():
    image = np.asarray(render([place(Element("circle", "blue"), (256, 256), 512)], 512))
    assert image.shape == (512, 512, 3)
    # Edge pixels take intermediate values between the colour and white.
    assert len(np.unique(image[..., 0])) > 2
    small = np.asarray(render([place(Element("circle", "blue"), (32, 32), 64)], 64))
    assert len(np.unique(small[..., 0])) > 8


def test_fixed_centres_pin_the_elements():
    rng = np.random.default_rng(0)
    placed = sample_layout(
        [Element("circle", "red"), Element("square", "blue")], 64, rng, fixed_centres=[(0.3, 0.5), (0.7, 0.5)]
    )
    assert [p.centre for p in placed] == [(0.3 * 64, 32.0), (0.7 * 64, 32.0)]


def test_jittered_colours_stay_inside_their_class_and_cover_pure_ones():
    import colorsys

    import numpy as np

    from originality.shapes.rendering import jittered_colour
    from originality.shapes.vocabulary import COLOUR_REGIONS, RGB

    def region(rgb):
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
        inside = []
        for name, (hue, spread, (s0, s1), (v0, v1)) in COLOUR_REGIONS.items():
            gap = min(abs(h * 360 - hue), 360 - abs(h * 360 - hue))
            if gap <= spread + 0.5 and s0 - 0.01 <= s <= s1 and v0 - 0.01 <= v <= v1:
                inside.append(name)
        return inside

    rng = np.random.default_rng(0)
    for name in RGB:
        assert region(RGB[name]) == [name]  # the palette sits inside its own region
        assert all(region(jittered_colour(name, rng)) == [name] for _ in range(500))
    assert region((255, 0, 0)) == ["red"] and region((0, 255, 0)) == ["green"] and region((0, 0, 255)) == ["blue"]


def test_jitter_off_renders_the_palette_exactly_as_before():

    from originality.shapes.dataset import render_example
    from originality.shapes.specs import originality_mix

    plain, again = render_example(originality_mix(), 5, 1, 64), render_example(originality_mix(), 5, 1, 64, False)
    jittered = render_example(originality_mix(), 5, 1, 64, True)
    assert plain["image"]["bytes"] == again["image"]["bytes"] and plain["caption"] == jittered["caption"]
    assert plain["elements"] == jittered["elements"]  # same layout and labels, other colours
    assert plain["image"]["bytes"] != jittered["image"]["bytes"]


def test_jittered_sizes_stay_inside_their_class_and_their_boxes_fit_the_ink():
    from originality.shapes.dataset import render_example
    from originality.shapes.rendering import SIZE_REGIONS, jittered_side
    from originality.shapes.specs import originality_mix

    (big_low, big_high), (small_low, small_high) = SIZE_REGIONS["big"], SIZE_REGIONS["small"]
    assert small_high < big_low and small_low < 0.15 < small_high and big_low < 0.25 < big_high
    rng = np.random.default_rng(0)
    for element in ALL_ELEMENTS:
        side = jittered_side(element, 64, rng)
        low, high = SIZE_REGIONS[element.size]
        assert low * 64 <= side <= high * 64
        (p,) = sample_layout([element], 64, rng, sides=[side])
        ys, xs = np.nonzero(ink_mask(render([p], 64)))
        assert np.allclose((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), p.bbox, atol=1.01), (element, side)
    plain = render_example(originality_mix(), 5, 1, 64)
    sized = render_example(originality_mix(), 5, 1, 64, size_jitter=True)
    assert plain["caption"] == sized["caption"] and plain["elements"] != sized["elements"]
