"""A contract's quality rules as AWS Glue Data Quality DQDL, for teams that run AWS's own service.

Written by hand: no library emits DQDL. Where DQDL means something slightly different, the document says so in
its header comments, so nobody is surprised by a differing count.
"""

from __future__ import annotations

from chalicelib.config import Contract, Rule


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _bounds(subject: str, low: float | None, high: float | None) -> str:
    """`subject >= low and subject <= high` (DQDL's `between` excludes its ends; ours include them)."""
    parts = [f"{subject} >= {_num(low)}"] if low is not None else []
    parts += [f"{subject} <= {_num(high)}"] if high is not None else []
    return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)


def rule_to_dqdl(rule: Rule) -> tuple[str, str]:
    """The DQDL rule, and a note where its meaning differs from ours ('' where it does not)."""
    col = _q(rule.column) if rule.column else ""
    if rule.check == "not_null":
        return f"IsComplete {col}", ""
    if rule.check == "unique":
        return "IsUnique " + " ".join(_q(c) for c in rule.columns), ""
    if rule.check == "accepted_values":
        values = ", ".join(_q(v) for v in rule.values)
        return f"ColumnValues {col} in [{values}]", "DQDL counts NULL as failing; the lakehouse ignores NULL"
    if rule.check == "range":
        return _bounds(f"ColumnValues {col}", rule.min, rule.max), ""
    if rule.check == "pattern":
        return f"ColumnValues {col} matches {_q(f'^(?:{rule.pattern})$')}", "DQDL counts NULL as failing"
    if rule.check == "references":
        dataset, column = rule.references or ("", "")
        note = f"needs the processed {dataset} table as an additional data source with the alias {dataset}"
        return f"ReferentialIntegrity {col} {_q(f'{dataset}.{column}')} = 1.0", note
    if rule.check == "freshness":
        return f"DataFreshness {col} <= {_num(rule.max_age_hours or 0)} hours", ""
    if rule.check == "row_count":
        return _bounds("RowCount", rule.min, rule.max), ""
    if rule.check == "volume":
        share = (rule.max_change_percent or 0) / 100
        mean = f"avg(last({rule.history}))"
        return (
            f"(RowCount >= {mean} * {_num(1 - share)}) and (RowCount <= {mean} * {_num(1 + share)})",
            "DQDL judges the table's rows against the mean of earlier runs; the lakehouse judges the rows a run "
            "loaded against their median",
        )
    raise ValueError(f"no DQDL for {rule.check}")


def to_dqdl(contract: Contract) -> str:
    """The DQDL ruleset of a contract's rules. Severity has no DQDL form: it is kept in the header."""
    header = [
        f"# AWS Glue Data Quality ruleset for processed_{contract.name}, from datasets/{contract.name}.toml",
        "# (lakehouse quality export-dqdl). Rules in order, with their lakehouse name and severity:",
    ]
    rules = []
    for number, rule in enumerate(contract.rules, 1):
        text, note = rule_to_dqdl(rule)
        header.append(f"#  {number}. {rule.name} [{rule.severity}]" + (f": {note}" if note else ""))
        rules.append(f"    {text}")
    if not rules:
        raise ValueError(f"{contract.name} has no [[rules]] to export")
    return "\n".join(header) + "\nRules = [\n" + ",\n".join(rules) + "\n]\n"
