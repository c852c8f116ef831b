"""``python -m reembed``: the command line (:mod:`reembed.ops.cli`)."""

from .ops.cli import main

main()
