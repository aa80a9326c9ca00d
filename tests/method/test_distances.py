import numpy as np
import pytest

from originality.errors import OriginalityError
from originality.method.distances import get_distance, reads_elements
from originality.shapes import Element
from originality.shapes.rendering import place, render


def picture(*elements: tuple[str, str]):
    """Shapes at fixed, separate places: (shape, colour) pairs, big and full."""
    centres = [(18.0, 18.0), (46.0, 46.0)][: len(elements)]
    placed = [place(Element(s, c, "big", "full"), xy, 64) for (s, c), xy in zip(elements, centres, strict=True)]
    return render(placed, 64)


def test_shapes_distance_ignores_colours_and_elements_does_not():
    query = picture(("circle", "red"), ("square", "blue"))
    samples = [
        picture(("circle", "red"), ("square", "blue")),  # exact
        picture(("circle", "blue"), ("square", "red")),  # colours swapped
        picture(("circle", "green"), ("square", "green")),  # other colours
        picture(("circle", "red"), ("triangle", "blue")),  # other shapes
        picture(("circle", "red")),  # one shape short
    ]
    assert get_distance("elements")(query, samples).tolist() == [0, 1, 1, 1, 1]
    assert get_distance("shapes")(query, samples).tolist() == [0, 0, 0, 1, 1]


def test_distance_names():
    assert reads_elements("shapes", None) and reads_elements("ssim", "positions") and not reads_elements("ssim", None)
    same = picture(("star", "green"))
    assert np.allclose(get_distance("ssim")(same, [same]), 0.0, atol=1e-6)
    with pytest.raises(OriginalityError, match="unknown distance"):
        get_distance("colour")
