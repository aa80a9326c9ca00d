"""Element detection for generated shapes images (the paper's YOLOv8, behind a small interface)."""

from originality.detection.detector import (
    DEFAULT_THRESHOLD,
    Detection,
    ElementDetector,
    centres,
    element_multiset,
    matches_caption,
)

__all__ = ["DEFAULT_THRESHOLD", "Detection", "ElementDetector", "centres", "element_multiset", "matches_caption"]
