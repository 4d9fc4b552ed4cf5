"""Offline pre-training algorithms; each produces the common actor-critic checkpoint."""
