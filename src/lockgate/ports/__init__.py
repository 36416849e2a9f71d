"""Protocols and frozen records between the engine and the world.

The engine, the stores and the executors never import each other; they meet
here. Records are plain frozen dataclasses so they can cross process
boundaries and be compared in tests.
"""
