"""`python -m crossmodal.cli` (tools/device_train.sh): the same command as `crossmodal`."""

from crossmodal.cli import main

main()
