"""`python -m processor.cli` is the `rewind` command."""

from processor.cli import main

main()
