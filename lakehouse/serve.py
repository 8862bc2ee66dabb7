"""`lakehouse serve`: the HTTP API and dashboard (app.py's routes) on this machine, through Chalice's own local
server (what `chalice local` runs), for the local stage or, with your AWS credentials, a deployed stage.

On the local stage the server follows the stage: `lakehouse down` and `up` start it on a new port, so every request
first looks where it runs now (`StageFollower`); while it is down, the data routes answer 503 saying how to start it,
without reaching the app (whose error handler would log a traceback per request)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from lakehouse import localstage
from lakehouse.paths import PROJECT_DIR

STAGE_DOWN = "the local stage is not running: start it with `lakehouse up`"
STATIC = frozenset({"/", "/openapi.json"})  # routes that answer without the stage (the dashboard page, the schema)


class StageFollower:
    """Where the local stage runs now, checked before each request: a stage started again on another port is
    followed (clients and the app's cached runtime rebuilt), a stopped one is reported. Returns the problem, or
    None when the stage answers."""

    def __init__(self, used: localstage.LocalStage | None = None) -> None:
        self._lock = threading.Lock()  # the server answers requests on threads
        self._used = used

    def __call__(self) -> str | None:
        from chalicelib import runtime

        found = localstage.running()
        if found is None:
            return STAGE_DOWN
        with self._lock:
            if found != self._used:
                localstage.use(found)
                runtime.reset()
                self._used = found
        return None


def reap_when_it_stops(pid: int) -> None:
    """Wait for a stage process this process started, on a thread: stopped by `lakehouse down` from another
    terminal, it would stay a zombie child of `serve`, which that `down` waits on as if it still ran."""
    threading.Thread(target=os.waitpid, args=(pid, 0), name=f"reap-{pid}", daemon=True).start()


def _following(handler: type[Any], follow: Callable[[], str | None]) -> type[Any]:
    """Chalice's request handler, asking `follow` first; its problem is a 503 in the app's error format."""

    class Following(handler):  # type: ignore[misc]  # a class given as a value
        def _generic_handle(self) -> None:
            problem = None if urlsplit(self.path).path in STATIC else follow()
            if problem is None:
                super()._generic_handle()
                return
            self._parse_payload()  # read the request's body, so the connection can be reused
            body = json.dumps({"Code": "ServiceUnavailableError", "Message": problem})
            self._send_http_response(503, {"Content-Type": "application/json"}, body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    return Following


def api_server(host: str, port: int, stage: str, follow: Callable[[], str | None] | None = None) -> Any:
    """Chalice's LocalDevServer for `stage`: its environment from .chalice/config.json, app.py's routes.
    The caller points the AWS clients at the stage first (the local stage's endpoint, or AWS); given `follow`
    (a `StageFollower`), each request asks it first."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

    from chalicelib import runtime

    factory = CLIFactory(project_dir=str(PROJECT_DIR), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)  # sets the stage's environment, imports app.py
    validate_routes(config.chalice_app.routes)  # what `chalice deploy` would refuse, refused here too
    runtime.reset()
    handler = ChaliceRequestHandler if follow is None else _following(ChaliceRequestHandler, follow)
    app = config.chalice_app
    if not isinstance(app, LocalChalice):  # as chalice.local.create_local_server, which takes no handler class
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, handler_cls=handler)
