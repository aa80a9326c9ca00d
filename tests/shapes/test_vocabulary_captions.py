import pytest

from originality.errors import OriginalityError
from originality.shapes import ALL_ELEMENTS, Element, caption, parse_caption, parse_description


def test_sixty_distinct_elements_with_stable_indices():
    assert len(ALL_ELEMENTS) == 60
    assert len(set(ALL_ELEMENTS)) == 60
    assert [e.index for e in ALL_ELEMENTS] == list(range(60))


def test_unknown_attribute_value_is_refused():
    with pytest.raises(OriginalityError, match="unknown colour 'purple'"):
        Element("circle", "purple")


def test_caption_round_trips_through_the_parser():
    elements = [ALL_ELEMENTS[i] for i in (0, 17, 33, 59, 17)]
    text = caption(elements)
    assert parse_caption(text) == elements
    assert caption(parse_caption(text)) == text


def test_caption_format_matches_the_paper():
    text = caption([Element("circle", "red", "big", "full"), Element("square", "blue", "small", "empty")])
    assert text == "big red full circle and small blue empty square"


def test_empty_caption_is_no_elements():
    assert caption([]) == ""
    assert parse_caption("") == []
    assert parse_caption("   ") == []


def test_parser_is_lenient_about_word_order_and_case():
    assert parse_caption("Small EMPTY blue square") == [Element("square", "blue", "small", "empty")]


def test_partial_description_matches_any_missing_attribute():
    (query,) = parse_description("blue circle")
    assert query.matches(Element("circle", "blue", "small", "empty"))
    assert not query.matches(Element("circle", "red", "small", "empty"))
    with pytest.raises(OriginalityError):
        parse_caption("blue circle")  # a caption names all four attributes


@pytest.mark.parametrize(
    "bad, message",
    [
        ("big red full circle and", "empty phrase"),
        ("big red full blob", "unknown word 'blob'"),
        ("big red circle full", "must end with a shape"),
        ("big small red full circle", "two size words"),
    ],
)
def test_malformed_captions_name_the_problem(bad, message):
    with pytest.raises(OriginalityError, match=message):
        parse_caption(bad)


def test_colour_count_counts_distinct_colours():
    from originality.shapes.captions import colour_count

    assert colour_count("big blue full circle and big red full square") == 2
    assert colour_count("big green full square and big green full triangle") == 1
    assert colour_count("") == 0
