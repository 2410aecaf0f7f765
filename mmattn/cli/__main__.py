"""`python -m mmattn.cli ...` runs the `mmattn` command."""

from mmattn.cli import main

main()
