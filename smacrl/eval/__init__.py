"""Evaluation: rollouts, metrics, reports, landscapes."""
