"""``python -m reembed.ops.cli``: the command line."""

from . import main

main()
