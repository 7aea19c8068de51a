"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class ChatforgeError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name."""
