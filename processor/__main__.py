"""`python -m processor` is the `rewind` command."""

from processor.cli import main

main()
