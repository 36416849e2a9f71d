"""`python -m lockgate`: the CLI (how `lockgate server` starts each run's driver)."""

from lockgate.cli.main import main

main()
