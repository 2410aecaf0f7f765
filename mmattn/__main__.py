"""`python -m mmattn ...` runs the `mmattn` command."""

from mmattn.cli import main

main()
