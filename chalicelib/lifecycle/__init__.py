"""Bucket lifecycle rules: their shape in TOML (documents), the definitions checked (rules) and the nightly sync
that applies them (sync)."""
