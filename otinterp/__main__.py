"""``python -m otinterp``: the same command line as the ``otinterp`` console script."""

from otinterp.cli import main

main()
