"""The ``tcnn`` command: one short function per subcommand over the Python API.

:mod:`~tcnn.apps.cli.parser` builds the argument parser (one function per command);
:mod:`~tcnn.apps.cli.commands` (inference, evaluation, the apps) and
:mod:`~tcnn.apps.cli.training` (training, conversion) hold the commands; :func:`main` runs one
and turns a :class:`~tcnn.errors.TcnnError` into a one-line message.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Sequence

from tcnn.apps.cli.parser import build_parser
from tcnn.errors import TcnnError

__all__ = ["build_parser", "entry", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 on a handled error, 2 on bad usage, 130 on
    Ctrl-C, 141 when the reader of the output went away, as in ``tcnn models | head``)."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except TcnnError as exc:
        print(f"tcnn: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tcnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:
    sys.exit(main())
