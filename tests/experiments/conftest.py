import pytest


@pytest.fixture
def scored():
    """A min-tokens record as ``results.jsonl`` holds it: distance 0.1 from m = ``count`` on, else
    0.9 (``count`` None: "+")."""

    def make(image: str, count: int | None, m_max: int = 3) -> dict:
        distances = {str(m): (0.1 if count is not None and m >= count else 0.9) for m in range(1, m_max + 1)}
        label = "+" if count is None else str(count)
        return {"image": image, "count": count, "label": label, "soft_tokens": 1.0, "distances": distances,
                "folder": image}  # fmt: skip

    return make
