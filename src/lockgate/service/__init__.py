"""Use cases (runs, artifacts) and the one composition root that wires stores and executors."""
