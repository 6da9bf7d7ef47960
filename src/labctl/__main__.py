"""`python -m labctl` is the `labctl` command (handy under profilers: `python -m cProfile -m labctl ...`)."""

from labctl.cli import main

main()
