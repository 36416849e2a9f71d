"""Fakes and contract suites for lockgate's ports."""
