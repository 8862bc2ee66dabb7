"""A contract's quality rules as AWS Glue Data Quality DQDL, for teams that run AWS's own service.

Written by hand: no library emits DQDL. Each check type gives its own DQDL form
(`chalicelib.quality.checks`). Where DQDL means something slightly different, the document says so in
its header comments, so nobody is surprised by a differing count.
"""

from __future__ import annotations

from chalicelib.config import Contract
from chalicelib.errors import UsageError
from chalicelib.quality.checks import check_of


def to_dqdl(contract: Contract) -> str:
    """The DQDL ruleset of a contract's rules. Severity has no DQDL form: it is kept in the header."""
    header = [
        f"# AWS Glue Data Quality ruleset for processed_{contract.name}, from datasets/{contract.name}.toml",
        "# (lakehouse quality export-dqdl). Rules in order, with their lakehouse name and severity:",
    ]
    rules = []
    for number, rule in enumerate(contract.rules, 1):
        text, note = check_of(rule).dqdl(rule)
        header.append(f"#  {number}. {rule.name} [{rule.severity}]" + (f": {note}" if note else ""))
        rules.append(f"    {text}")
    if not rules:
        raise UsageError("dataset", f"{contract.name} has no [[rules]] to export")
    return "\n".join(header) + "\nRules = [\n" + ",\n".join(rules) + "\n]\n"
