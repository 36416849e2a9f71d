"""Evaluators: score model and LLM outputs; `evaluate` runs them per cohort as a node."""
