"""Online fine-tuning of the common actor-critic: SAC, TD3, TD3+BC and AWR, and the protocol loop."""
