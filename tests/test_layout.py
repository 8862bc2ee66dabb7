"""The house rules of the layout (docs/architecture.md): every import points down and no import circle (the
import-linter contracts in pyproject.toml, run here and by `make test`), the deployment code stays out of what ships
to Lambda and Glue, and packaging lists every package."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

SOURCES = {"chalicelib": ROOT, "deploy": ROOT, "lakehouse": ROOT, "lakehouse_etl": ROOT / "glue_scripts"}


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for package, base in SOURCES.items():
        for path in (base / package).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def lint_imports(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """import-linter's verdict on the contracts of `root`'s pyproject.toml, with `root`'s packages imported."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "glue_scripts")])}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)


def test_every_import_points_down_and_no_package_has_an_import_circle():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_app_py_imports_only_the_lambda_core():
    """app.py is a module, not a package: import-linter sees only the imports of it, so its own are read here."""
    nodes = list(ast.walk(ast.parse((ROOT / "app.py").read_text())))
    imported = {n.module or "" for n in nodes if isinstance(n, ast.ImportFrom) and not n.level}
    imported |= {alias.name for n in nodes if isinstance(n, ast.Import) for alias in n.names}
    assert {m.split(".")[0] for m in imported} & {*SOURCES, "app"} == {"chalicelib"}


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # inside a function, to dodge the import circle, is still an upward arrow
        ("chalicelib/config/__init__.py", "def f():\n    from chalicelib.quality import checks\n", "chalicelib.config"),
        ("chalicelib/errors.py", "def f():\n    import chalicelib.aws\n", "chalicelib.errors -> chalicelib.aws"),
        ("chalicelib/quality/gate.py", "from chalicelib.api.openapi import ERROR\n", "chalicelib.quality.gate ->"),
        ("glue_scripts/lakehouse_etl/lake.py", "def f():\n    import deploy\n", "lakehouse_etl.lake -> deploy"),
        ("deploy/plan.py", "def f():\n    import app\n", "deploy.plan -> app"),
        ("chalicelib/ledger/records.py", "def f():\n    import chalicelib.ledger.base\n", "chalicelib.ledger"),
    ],
)
def test_an_upward_import_or_a_circle_breaks_a_contract(tmp_path, module, line, broken):
    for part in ("app.py", "pyproject.toml", "chalicelib", "deploy", "lakehouse", "glue_scripts"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, tmp_path / part)
    (tmp_path / module).write_text((tmp_path / module).read_text() + "\n\n" + line)
    result = lint_imports(tmp_path)
    assert result.returncode == 1 and "0 broken" not in result.stdout and broken in result.stdout, result.stdout


def test_the_package_list_names_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert listed == packages


def test_the_glue_jobs_zip_carries_the_two_cores_and_no_deployment_code(settings, stage):
    import io
    import zipfile

    from deploy.glue_bundle import glue_files

    files = glue_files(settings, stage)
    names = zipfile.ZipFile(io.BytesIO(files["glue/lakehouse_libs.zip"])).namelist()
    assert "chalicelib/ledger/base.py" in names and "lakehouse_etl/delta.py" in names
    assert [n for n in names if not n.startswith(("chalicelib/", "lakehouse_etl/"))] == []


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {*SOURCES, "app"}:
                private += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def _public_callables_without_docs() -> list[str]:
    import importlib
    import inspect

    missing = []
    for name in _modules():
        if not name.startswith("chalicelib"):
            continue
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) and not inspect.getdoc(obj):
                missing.append(f"{name}.{attr}")
            if inspect.isclass(obj):
                if not inspect.getdoc(obj) or obj.__doc__ is None:
                    missing.append(f"{name}.{attr}")
                for method, member in vars(obj).items():
                    if method.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                        continue
                    if not inspect.getdoc(getattr(obj, method)):  # an override inherits its base's docstring
                        missing.append(f"{name}.{attr}.{method}")
    return missing


def test_every_public_function_and_class_of_the_lambda_core_has_a_docstring():
    assert _public_callables_without_docs() == []
