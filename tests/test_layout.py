"""The house rules of the layout (docs/architecture.md): every import points down, no import circle, the
deployment code stays out of what ships to Lambda and Glue, and packaging lists every package."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from conftest import ROOT

# Layers, top to bottom: a module may import its own layer and the ones below, never one above.
LAYERS = {"lakehouse": 3, "deploy": 2, "lakehouse_etl": 2, "app": 1, "chalicelib": 0}
SOURCES = {"chalicelib": ROOT, "deploy": ROOT, "lakehouse": ROOT, "lakehouse_etl": ROOT / "glue_scripts"}


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for package, base in SOURCES.items():
        for path in (base / package).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, at its top or inside a function: `from a.b import c` is a.b.c when
    that is a module, else a.b."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_every_import_points_down():
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module) or (module == "app" and target.split(".")[0] != "chalicelib")
    ]
    assert upward == []


def test_the_glue_core_and_deployment_do_not_import_each_other():
    pairs = {(m.split(".")[0], t.split(".")[0]) for m, targets in _graph().items() for t in targets}
    assert not pairs & {("deploy", "lakehouse_etl"), ("lakehouse_etl", "deploy")}


def test_no_import_circle():
    graph = _graph()
    circles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    circles.append(" -> ".join((*path, start)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert circles == []


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
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LAYERS:
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
