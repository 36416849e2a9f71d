"""The reliability suite (docs/chaos.md): each test is one row of the chaos table.

The `chaos` fixture and the table live in tests/chaos_report.py, so suites
elsewhere (the REST API fuzzing in tests/server) report rows too; the run
checker is checker.py, the installation driver installation.py.
"""
