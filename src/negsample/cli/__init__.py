"""Command line: ``negsample demo``, ``negsample mine``, ``negsample report``,
``negsample train``, ``negsample probe``.

``main(argv) -> int``: data to stdout or files, progress and diagnostics to stderr.
Exit codes: 0 success, 1 runtime failure (disk full, a missing optional dependency, an
unexpected error), 2 bad usage or bad input, 3 a run stopped by ``--max-chunks`` before
its end (rerun the same command to continue), 4 another run holds the lock on this
output, 130 interrupted (Ctrl-C; ``mine`` resumes from its finished chunks).
Every failure ends in one line ``negsample: error: ...`` on stderr, never a traceback
(``NEGSAMPLE_DEBUG=1`` shows it for unexpected errors).
The subcommands only call the Python API (``load_beir``, ``encode_dataset``,
``mine_dataset``, ``write_negatives``, ``sampler_report``...).

One module per command (:mod:`~negsample.cli.demo`, :mod:`~negsample.cli.mine`,
:mod:`~negsample.cli.report`, :mod:`~negsample.cli.train`, :mod:`~negsample.cli.probe`),
each with ``add_parser(sub)`` and ``run(args) -> int``; the option groups and argument
types they share are in ``_args``, the inputs and outputs they share in ``_common``, the
exit codes in ``_errors``, the parser and ``main`` in ``_main``.
"""

from ._errors import (
    EXIT_FAILURE,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
)
from ._main import build_parser, main

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
