"""The Glue jobs install their pinned modules from a zip of wheels that `lakehouse deploy` builds and uploads, never
from PyPI (AWS Glue docs, "Using Python libraries with AWS Glue": zip of wheels, Glue 5.0)."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.errors import DeploymentError
from chalicelib.stage.declared import (
    GLUE_PYTHON_MODULES,
    SPARK_PYTHON_MODULES,
    glue_jobs,
    job_definition,
    wheels_key,
)
from deploy import glue_wheels


def test_every_glue_job_names_a_zip_of_wheels_in_the_bucket_and_no_module_of_an_index(settings, stage):
    for name, job in glue_jobs(settings, stage).items():
        args = job_definition(stage, job, "123456789012")["DefaultArguments"]
        modules = args["--additional-python-modules"]
        assert modules.startswith(f"s3://{stage.bucket}/glue/wheels/") and modules.endswith(".gluewheels.zip"), name
        assert "==" not in modules and "," not in modules, name  # no name for pip to look up on PyPI
        assert args["--python-modules-installer-option"] == "--no-index", name
    zips = glue_wheels.wanted(settings, stage)
    assert sorted(zips.values()) == sorted([GLUE_PYTHON_MODULES, SPARK_PYTHON_MODULES])
    # a changed pin is another zip: an unchanged one is never built or uploaded again
    assert wheels_key(GLUE_PYTHON_MODULES.replace("pytz==2025.2", "pytz==2025.1")) != wheels_key(GLUE_PYTHON_MODULES)


class FakePip:
    """`pip download` writing an empty wheel per pin (and one dependency), or failing like pip."""

    def __init__(self, fail: str | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args):
        self.calls.append(list(args))
        if self.fail:
            return subprocess.CompletedProcess(args, 1, "", f"Looking in indexes: x\n{self.fail}\n")
        dest = Path(args[args.index("--dest") + 1])
        pins = [a for a in args if "==" in a]
        for pin in [*pins, "typing_extensions==4.16.0"]:
            name, version = pin.split("==")
            (dest / f"{name}-{version}-py3-none-any.whl").write_bytes(f"{name} wheel".encode())
        return subprocess.CompletedProcess(args, 0, "", "")


def test_the_zip_holds_the_wheels_and_their_pins_for_glue_s_python_and_is_built_once(tmp_path):
    pip = FakePip()
    path = glue_wheels.build(GLUE_PYTHON_MODULES, tmp_path, pip)
    assert path.name == wheels_key(GLUE_PYTHON_MODULES).rsplit("/", 1)[-1]
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    assert names[0] == "wheels/requirements.txt" and all(n.startswith("wheels/") for n in names)
    requirements = archive.read("wheels/requirements.txt").decode().split()
    assert sorted(requirements) == sorted([*GLUE_PYTHON_MODULES.split(","), "typing_extensions==4.16.0"])
    assert len(names) == 1 + len(requirements)
    (args,) = pip.calls
    assert args[:2] == ["download", "--only-binary=:all:"]  # wheels only: nothing built for this machine
    assert args[args.index("--python-version") + 1] == "3.11" and args[args.index("--implementation") + 1] == "cp"
    platforms = {args[i + 1] for i, a in enumerate(args) if a == "--platform"}
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_34_x86_64"} <= platforms
    assert "manylinux_2_35_x86_64" not in platforms  # newer than Glue 5.0's Amazon Linux 2023 (glibc 2.34)
    # the same pins again: from the cache, pip not asked
    assert glue_wheels.build(GLUE_PYTHON_MODULES, tmp_path, pip) == path and len(pip.calls) == 1
    # the same wheels make the same bytes
    again = glue_wheels.build(GLUE_PYTHON_MODULES, tmp_path / "other", FakePip())
    assert again.read_bytes() == path.read_bytes()


def test_an_index_that_cannot_be_reached_stops_the_build_in_one_line_and_caches_nothing(tmp_path):
    pip = FakePip(fail="ERROR: Could not find a version that satisfies the requirement pyarrow==24.0.0")
    with pytest.raises(DeploymentError) as caught:
        glue_wheels.build(GLUE_PYTHON_MODULES, tmp_path, pip)
    message = str(caught.value)
    assert "\n" not in message and "cannot download the Glue jobs' wheels" in message
    assert "Python 3.11" in message and "satisfies the requirement pyarrow==24.0.0" in message
    assert list(tmp_path.iterdir()) == []  # no half-built zip taken for done next time


def test_deploy_uploads_the_zips_the_bucket_lacks_once_and_the_plan_lists_them(provisioned, settings, stage, tmp_path):
    fix = "lakehouse deploy --stage local"
    missing = glue_wheels.changes(provisioned.s3, settings, stage, fix)
    assert sorted(f.resource for f in missing) == sorted(
        f"s3://{stage.bucket}/{wheels_key(p)}" for p in (GLUE_PYTHON_MODULES, SPARK_PYTHON_MODULES)
    )
    pip = FakePip()
    assert glue_wheels.ensure(provisioned.s3, settings, stage, tmp_path, pip).startswith("glue wheels: 2 of 2 zips")
    body = provisioned.s3.get_object(Bucket=stage.bucket, Key=wheels_key(SPARK_PYTHON_MODULES))["Body"].read()
    assert "wheels/sqlglot-30.30.0-py3-none-any.whl" in zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert glue_wheels.ensure(provisioned.s3, settings, stage, tmp_path / "empty", pip).startswith(
        "glue wheels: 0 of 2 zips"
    )
    assert len(pip.calls) == 2 and glue_wheels.changes(provisioned.s3, settings, stage, fix) == []


@pytest.mark.e2e
@pytest.mark.parametrize("pins", [GLUE_PYTHON_MODULES, SPARK_PYTHON_MODULES])
def test_the_real_zip_has_a_wheel_of_every_pin_for_glue_and_installs_with_no_index(tmp_path, pins):
    """pip downloads from the package index (about 120 MB): the zip holds a wheel of every pinned module at its pin,
    each for CPython 3.11 on manylinux x86_64 up to glibc 2.34, and pip installs them all from it alone."""
    from packaging.tags import Tag
    from packaging.utils import canonicalize_name, parse_wheel_filename

    path = glue_wheels.build(pins, tmp_path / "cache")
    wheels_dir = tmp_path / "unzipped"
    zipfile.ZipFile(path).extractall(wheels_dir)
    found = {}
    for wheel in (wheels_dir / "wheels").glob("*.whl"):
        name, version, _, tags = parse_wheel_filename(wheel.name)
        found[canonicalize_name(name)] = str(version)
        glue_tags = {
            Tag(i, a, p)
            for i in ("cp311", "cp310", "py3", "py2.py3")
            for a in ("cp311", "abi3", "none")
            for p in (
                *(f"manylinux_2_{m}_x86_64" for m in range(5, 35)),
                "manylinux2014_x86_64",
                "manylinux1_x86_64",
                "any",
            )
        }
        assert tags & glue_tags, f"{wheel.name} does not install on Glue 5.0"
    for pin in pins.split(","):
        name, version = pin.split("==")
        assert found.get(canonicalize_name(name)) == version, pin
    install = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links", str(wheels_dir / "wheels"),
        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--target", str(tmp_path / "t"),
        *(a for p in ("manylinux_2_28_x86_64", "manylinux2014_x86_64") for a in ("--platform", p)),
        "-r", str(wheels_dir / "wheels" / "requirements.txt"),
    ]  # fmt: skip
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
