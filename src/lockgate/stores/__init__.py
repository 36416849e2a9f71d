"""Concrete stores behind the ports: metadata (SQL) and artifacts (content-addressed)."""
