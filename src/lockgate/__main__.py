"""`python -m lockgate`: the CLI, for environments without the `lockgate` script on PATH."""

from lockgate.cli.main import main

main()
