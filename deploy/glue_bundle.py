"""What the Glue jobs run, as uploaded to the lake bucket: the entry points and one zip of the Lambda core
(chalicelib/) and the ETL core (lakehouse_etl/). The deployment code itself never travels.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from chalicelib.config import Settings, Stage
from chalicelib.stage.declared import GLUE_PREFIX, glue_jobs
from deploy.chalice_project import PROJECT_DIR


def _library_zip(project_dir: Path) -> bytes:
    """chalicelib/ and lakehouse_etl/ as one zip for --extra-py-files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package, base in (("chalicelib", project_dir), ("lakehouse_etl", project_dir / "glue_scripts")):
            for path in sorted((base / package).rglob("*.py")):
                info = zipfile.ZipInfo(path.relative_to(base).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(info, path.read_bytes())  # fixed timestamps: same code, same bytes, no re-upload
    return buffer.getvalue()


def glue_files(settings: Settings, stage: Stage, project_dir: Path = PROJECT_DIR) -> dict[str, bytes]:
    """What the Glue jobs run, by key in the lake bucket: the entry points and the library zip."""
    files = {f"{GLUE_PREFIX}lakehouse_libs.zip": _library_zip(project_dir)}
    for script in sorted({job.script for job in glue_jobs(settings, stage).values()}):
        files[f"{GLUE_PREFIX}scripts/{script}"] = (project_dir / "glue_scripts" / script).read_bytes()
    return files
