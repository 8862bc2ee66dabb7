"""`lakehouse serve`: the HTTP API and dashboard (app.py's routes) on this machine, through Chalice's own local
server (what `chalice local` runs), for the local stage or, with your AWS credentials, a deployed stage."""

from __future__ import annotations

import os
from typing import Any

from lakehouse.localstage import PROJECT_DIR


def api_server(host: str, port: int, stage: str) -> Any:
    """Chalice's LocalDevServer for `stage`: its environment from .chalice/config.json, app.py's routes.
    The caller points the AWS clients at the stage first (the local stage's endpoint, or AWS)."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import LocalChalice, LocalDevServer

    from chalicelib import runtime

    factory = CLIFactory(project_dir=str(PROJECT_DIR), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)  # sets the stage's environment, imports app.py
    validate_routes(config.chalice_app.routes)  # what `chalice deploy` would refuse, refused here too
    runtime.reset()
    if isinstance(config.chalice_app, LocalChalice):  # Chalice re-classes the app on its first local server only
        return LocalDevServer(config.chalice_app, config, host, port)
    return factory.create_local_server(config.chalice_app, config, host, port)
