"""Bucket lifecycle rules: TOML definitions (rules) and the nightly sync that applies them (sync)."""
