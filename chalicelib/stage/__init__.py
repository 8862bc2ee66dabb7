"""The stage as declared and as it lives: its Glue catalog tables (catalog) and the drift report (drift)."""
