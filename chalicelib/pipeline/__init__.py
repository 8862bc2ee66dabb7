"""Pipeline runs: how files are batched (batching), when a run starts (batcher), and the state machine's Lambda
steps (steps)."""
