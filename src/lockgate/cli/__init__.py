"""The command line: parses, calls services, prints with Rich. Errors render in `main.py`."""
