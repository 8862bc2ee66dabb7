"""Pipeline runs: when accepted files start one (batcher), and the state machine's Lambda steps (steps)."""
