"""What `lockgate demo` and the examples share: a synthetic support corpus and the demo runner."""
