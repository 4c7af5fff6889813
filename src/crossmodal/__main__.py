from crossmodal.cli import main

main()
