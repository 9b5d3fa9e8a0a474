from vsc.cli import main

main()
