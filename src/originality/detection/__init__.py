"""Element detection for generated shapes images (the paper's YOLOv8, behind a small interface)."""

from originality.detection.detector import (
    DEFAULT_THRESHOLD,
    MATCH_KINDS,
    Detection,
    ElementDetector,
    centres,
    element_multiset,
    kind_shares,
    match_kind,
    matches_caption,
    mismatch,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "MATCH_KINDS",
    "Detection",
    "ElementDetector",
    "centres",
    "element_multiset",
    "kind_shares",
    "match_kind",
    "matches_caption",
    "mismatch",
]
