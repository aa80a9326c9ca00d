"""Digests of weight files, so that a cached or resumed result names the exact weights it used."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path, chars: int = 12) -> str:
    """The first ``chars`` hex digits of a file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()  # hashlib.file_digest needs 3.11; the package supports 3.10
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:chars]
