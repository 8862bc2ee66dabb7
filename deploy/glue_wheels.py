"""The Glue jobs' pinned libraries as zips of wheels in the lake bucket, built and uploaded by `lakehouse deploy`.

A job that names modules in `--additional-python-modules` has pip fetch them from PyPI at every run: billed time
before the ETL starts, and no run at all while PyPI is unreachable. A Glue 5.0 job installs instead from a "zip of
wheels" in S3 with `--python-modules-installer-option --no-index` (AWS Glue docs, "Using Python libraries with AWS
Glue", and its Appendix A): the zip holds `wheels/requirements.txt` and `wheels/*.whl`, the pins and every
dependency, built for Glue's Python and platform. pip's own `download` resolves and fetches them for that target
(`--only-binary=:all:` with `--platform` and `--python-version`); only the zip is written here.

The zip is named by a hash of the pins (`declared.wheels_key`): one in the bucket is the one wanted, so it is built
(once per pins, into a cache on this machine: `LAKEHOUSE_WHEELS_CACHE`) and uploaded only when the bucket lacks it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.errors import DeploymentError
from chalicelib.stage.declared import GLUE_PLATFORMS, GLUE_PREFIX, GLUE_PYTHON, glue_jobs, python_modules, wheels_key
from chalicelib.stage.drift import Finding

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

WHEELS_CACHE = Path(os.environ.get("LAKEHOUSE_WHEELS_CACHE", Path.home() / ".cache" / "lakehouse" / "glue-wheels"))

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)


def pip_download_args(pins: str, dest: Path) -> list[str]:
    """`pip download` of the pins and their dependencies as wheels for Glue's Python and platform."""
    platforms = [arg for platform in GLUE_PLATFORMS for arg in ("--platform", platform)]
    return [
        "download",
        "--only-binary=:all:",  # a source distribution would be built for this machine, not for Glue's
        *platforms,
        "--python-version",
        GLUE_PYTHON,
        "--implementation",
        "cp",
        "--dest",
        str(dest),
        "--disable-pip-version-check",
        "--quiet",
        *pins.split(","),
    ]


def _requirement(wheel: Path) -> str:
    """`name==version` of a wheel file (its name says both: PEP 427)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def zip_of_wheels(wheels: Sequence[Path]) -> bytes:
    """Glue's zip of wheels: `wheels/requirements.txt` pinning every wheel, and the wheels. Fixed timestamps and
    order: the same wheels make the same bytes."""
    import io

    ordered = sorted(wheels, key=lambda w: w.name)
    requirements = "".join(f"{_requirement(w)}\n" for w in ordered)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # wheels are zips already
        stamp = (1980, 1, 1, 0, 0, 0)
        archive.writestr(zipfile.ZipInfo("wheels/requirements.txt", date_time=stamp), requirements)
        for wheel in ordered:
            archive.writestr(zipfile.ZipInfo(f"wheels/{wheel.name}", date_time=stamp), wheel.read_bytes())
    return buffer.getvalue()


def build(pins: str, cache_dir: Path = WHEELS_CACHE, pip: Runner = _pip) -> Path:
    """The zip of wheels of `pins`, from the cache or downloaded and built into it."""
    target = cache_dir / wheels_key(pins).rsplit("/", 1)[-1]
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        done = pip(pip_download_args(pins, Path(tmp)))
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or ["(no message)"]
            raise DeploymentError(
                f"cannot download the Glue jobs' wheels ({pins}) for Python {GLUE_PYTHON} on manylinux x86_64: "
                f"{errors[-1]} (pip download; a registry is needed once per change of the pins)"
            )
        body = zip_of_wheels(sorted(Path(tmp).glob("*.whl")))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(body)
    partial.replace(target)  # whole or not at all: a build stopped half-way is not taken for done
    return target


def wanted(settings: Settings, stage: Stage) -> dict[str, str]:
    """The zips the stage's jobs name: their key in the lake bucket -> the pins they hold."""
    return {wheels_key(pins): pins for pins in sorted({python_modules(j) for j in glue_jobs(settings, stage).values()})}


def exists(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether the bucket has the object."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        return False
    return True


def changes(s3: S3Client, settings: Settings, stage: Stage, fix: str) -> list[Finding]:
    """For `lakehouse deploy --plan`: the zips the bucket lacks (named by their pins: one there is the one wanted)."""
    return [
        Finding(f"s3://{stage.bucket}/{key}", "content", "the pins' wheels", "missing", fix)
        for key in wanted(settings, stage)
        if not exists(s3, stage.bucket, key)
    ]


def ensure(s3: S3Client, settings: Settings, stage: Stage, cache_dir: Path = WHEELS_CACHE, pip: Runner = _pip) -> str:
    """Upload the zips the stage's jobs name that the bucket lacks, each built first (or found in the cache)."""
    missing = {key: pins for key, pins in wanted(settings, stage).items() if not exists(s3, stage.bucket, key)}
    for key, pins in missing.items():
        s3.upload_file(str(build(pins, cache_dir, pip)), stage.bucket, key)  # managed transfer: multipart, ~120 MB
    where = f"s3://{stage.bucket}/{GLUE_PREFIX}wheels/"
    count = len(wanted(settings, stage))
    return f"glue wheels: {len(missing)} of {count} zips of wheels uploaded to {where} (the others were there)"
