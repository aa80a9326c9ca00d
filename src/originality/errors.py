"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class OriginalityError(Exception):
    """A user-facing error: bad input, a missing file, an impossible setting."""
