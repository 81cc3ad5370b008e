"""The one exception type the CLI turns into a one-line message."""


class TcnnError(Exception):
    """A user-facing error: bad input, a missing file, a missing optional package.

    The message names the file or value and the cause, on one line.
    """
