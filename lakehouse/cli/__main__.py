"""`python -m lakehouse.cli`: the same as the `lakehouse` command."""

from lakehouse.cli import main

main(prog_name="lakehouse")
