"""The quality gate: the check types (checks), the scan and its verdicts (gate), their DQDL form (dqdl)."""
