"""The `lakehouse` command: the CLI, the embedded local stage and its executor, sample data."""
