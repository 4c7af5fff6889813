"""`python -m crossmodal`: the same command as `crossmodal`."""

from crossmodal.cli import main

main()
