"""The one exception type the CLI turns into a one-line message."""


class TcnnError(ValueError):
    """A user-facing error: bad input, a missing file, a missing optional package.

    The message names the file or value and the cause, on one line. A ``ValueError``, so that
    code catching ``ValueError`` around a bad argument keeps working.
    """
