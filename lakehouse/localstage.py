"""The embedded local stage: moto in server mode plus a local Lambda event-source poller, in one process.

`up` starts `python -m lakehouse.localstage serve` detached, waits until the endpoint answers, then
provisions the stage with the very code a real stage uses. Inside that process:
- moto answers the AWS APIs on a loopback port (a real HTTP endpoint for boto3, the AWS CLI, delta-rs);
- the lake bucket notifies the ingest queue of every object created under raw/ (moto delivers S3
  notifications to SQS as AWS does);
- a poller plays Lambda's SQS event source mapping: it receives batches from the ingest queue and invokes
  the Chalice `validate` function through Chalice's own local invoker, deleting a batch only on success;
- a timer plays the `batcher` schedule: every minute (LAKEHOUSE_BATCHER_SECONDS) it starts a pipeline run
  when accepted files are due, and runs it with the local state machine executor; and the `housekeeping`
  schedule of `[schedules]`, under the run lock (lakehouse/jobs.py LocalChores).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.errors import LocalStageError
from chalicelib.ingest.events import s3_notification as s3_notification  # re-exported: tests and the demo use it
from lakehouse.orchestration import alive
from lakehouse.paths import CACHE_DIR
from lakehouse.paths import PROJECT_DIR as PROJECT_DIR  # re-exported: callers say localstage.PROJECT_DIR
from lakehouse.paths import STATE_DIR as STATE_DIR

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

# Where the running stage is recorded; tests point it elsewhere so they never touch yours.
STATE_FILE = STATE_DIR / "local.json"
LOG_FILE = STATE_DIR / "local.log"
EXECUTIONS_DIR = STATE_DIR / "executions"  # the local state machine's executions (lakehouse/orchestration.py)
SNAPSHOT_DIR = STATE_DIR / "snapshot"  # the stage's data between `down` and `up` (lakehouse/snapshot.py)
RESTORE_FILE = STATE_DIR / "restore.json"  # what the stage process restored on start, or why it could not
SNAPSHOT_ENV = "LAKEHOUSE_SNAPSHOT_SECONDS"  # how often a changed stage is snapshotted (the journal goes with it)
STAGE = "local"
ACCOUNT = "123456789012"  # moto's account, whatever the (dummy) credentials say
BATCHER_ENV = "LAKEHOUSE_BATCHER_SECONDS"  # how often the local stage plays the batcher schedule; 0: never
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class LocalStage:
    pid: int
    port: int
    region: str
    batcher_seconds: float = 60.0  # how often it plays the batcher schedule (BATCHER_ENV when it started; 0: never)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What any standard client (AWS CLI, boto3 script) needs to talk to this stage."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


def running() -> LocalStage | None:
    """The local stage if it is up and answering, else None."""
    if not STATE_FILE.exists():
        return None
    stage = LocalStage(**json.loads(STATE_FILE.read_text()))
    return stage if alive(stage.pid) and _answers(stage.endpoint) else None


def require() -> LocalStage:
    stage = running()
    if stage is None:
        raise LocalStageError("the local stage is not running: start it with `lakehouse up`")
    return stage


def _listening_socket() -> socket.socket:
    """A loopback socket on a free port, listening: the stage process serves on it as it inherits it. Naming a free
    port for the process to bind would leave it free while the process imports moto (seconds, under load), for any
    other process's bind to take; `up` would then provision whatever moto server answers there."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # requests wait in its backlog until the stage serves them
    return sock


def use(stage: LocalStage) -> None:
    """Point this process's AWS clients at the local stage."""
    from chalicelib import aws

    os.environ.update(stage.environment())
    aws.clear_cache()


def up(region: str, provision: Callable[[], list[str]], timeout: float = 30.0) -> tuple[LocalStage, bool]:
    """Start (if needed) and provision the local stage; returns it and whether it was started now."""
    stage = running()
    started = stage is None
    if stage is None:
        STATE_DIR.mkdir(exist_ok=True)
        from lakehouse import snapshot

        if not snapshot.kept(SNAPSHOT_DIR):  # a stage with nothing kept starts empty: so do its runs
            shutil.rmtree(EXECUTIONS_DIR, ignore_errors=True)
        else:  # restoring reads the whole snapshot before the endpoint answers
            timeout = max(timeout, 600.0)
        RESTORE_FILE.unlink(missing_ok=True)
        listening = _listening_socket()
        port = listening.getsockname()[1]
        with LOG_FILE.open("ab") as log, listening:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lakehouse.localstage", "serve", str(port), region, str(listening.fileno())],
                cwd=PROJECT_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=(listening.fileno(),),
                start_new_session=True,  # outlives the CLI command that started it
            )
        stage = LocalStage(pid=proc.pid, port=port, region=region, batcher_seconds=_batcher_seconds())
        deadline = time.monotonic() + timeout
        while not _answers(stage.endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                why = (last_restore() or {}).get("error")
                raise LocalStageError(why or f"the local stage did not start; see {LOG_FILE}")
            time.sleep(0.1)

        def serves_aws() -> None:
            if proc.poll() is not None:
                raise LocalStageError(f"the local stage stopped while starting; see {LOG_FILE}")
            _serves_aws(stage)

        try:
            wait_until_serving(serves_aws, deadline, f"the local stage at {stage.endpoint}")
        except LocalStageError:
            proc.kill()
            raise
        STATE_FILE.write_text(json.dumps(dataclasses.asdict(stage)))
    use(stage)
    provision()
    return stage, started


def _batcher_seconds() -> float:
    return float(os.environ.get(BATCHER_ENV, "60"))


def _serves_aws(stage: LocalStage) -> None:
    """One AWS request, `up`'s first (STS GetCallerIdentity), without retries: it raises until moto serves it."""
    import boto3
    from botocore.config import Config

    sts = boto3.client(
        "sts",
        endpoint_url=stage.endpoint,
        region_name=stage.region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    sts.get_caller_identity()


def wait_until_serving(probe: Callable[[], None], deadline: float, what: str) -> None:
    """Wait until `probe` passes: the stage's port answers before its process has imported what serves AWS requests
    (moto imports a service's modules on its first request, and the stage process imports the Chalice app at the
    same time), and `up` provisions only a stage that serves them; past `deadline`, a LocalStageError."""
    while True:
        try:
            probe()
            return
        except LocalStageError:  # the probe knows the stage will not serve
            raise
        except Exception as exc:  # any answer but a good one: the stage is not ready yet
            if time.monotonic() > deadline:
                raise LocalStageError(
                    f"{what} does not serve AWS requests yet ({' '.join(str(exc).split())}); see {LOG_FILE}"
                ) from None
        time.sleep(0.2)


def last_restore() -> dict[str, Any] | None:
    """What the stage process restored when it started (the snapshot's `manifest`, the journal's changes `replayed`
    and those that `failed`, `unclean`), or why it could not (`error`)."""
    return json.loads(RESTORE_FILE.read_text()) if RESTORE_FILE.exists() else None


def down(timeout: float = 600.0, *, discard: bool = False) -> bool:
    """Stop the local stage, which snapshots its data first (`discard`: and forget that data); True if one was
    running. Safe to call when nothing runs."""
    from lakehouse import snapshot

    if not STATE_FILE.exists():
        was_running = False
    else:
        was_running = _stop(
            json.loads(STATE_FILE.read_text())["pid"], signal.SIGUSR1 if discard else signal.SIGTERM, timeout
        )
    if discard:
        snapshot.discard(SNAPSHOT_DIR)
        for folder in (EXECUTIONS_DIR, CACHE_DIR):
            shutil.rmtree(folder, ignore_errors=True)
    return was_running


def _running(pid: int) -> bool:
    """Alive and not a zombie: a stage this process started (`lakehouse demo`) is its child, and stays a zombie
    until reaped here."""
    with contextlib.suppress(ChildProcessError):  # another process's child: nothing to reap
        os.waitpid(pid, os.WNOHANG)
    return alive(pid)


def _stop(pid: int, how: signal.Signals, timeout: float) -> bool:
    """Signal the stage process (SIGTERM: snapshot, then exit; SIGUSR1: exit) and wait; True if it was running."""
    was_running = _running(pid)
    if was_running:
        os.killpg(pid, how)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _running(pid):
            os.killpg(pid, signal.SIGKILL)
    STATE_FILE.unlink(missing_ok=True)
    return was_running


def in_use() -> bool:
    """Whether the local stage holds data: it runs, or `lakehouse down` kept its data to bring back."""
    from lakehouse import snapshot

    return running() is not None or snapshot.kept(SNAPSHOT_DIR)


def set_aside(name: str) -> Path | None:
    """Stop the stage and move its kept data (snapshot and runs) to `.lakehouse/<name>/`, replacing what was
    there; the folder, or None if nothing was kept. `lakehouse demo` starts from nothing without losing yours."""
    from lakehouse import snapshot

    down()
    if not snapshot.kept(SNAPSHOT_DIR):
        return None
    target = STATE_DIR / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for folder in (SNAPSHOT_DIR, EXECUTIONS_DIR):
        if folder.exists():
            shutil.move(str(folder), str(target / folder.name))
    return target


def wait_until_idle(sqs: SQSClient, queue_name: str, timeout: float = 60.0) -> None:
    """Wait until a queue holds no message, visible or in flight (the validator has finished with all)."""
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    deadline = time.monotonic() + timeout
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0:
            return
        if time.monotonic() > deadline:
            raise LocalStageError(f"queue {queue_name} still busy after {timeout:.0f}s")
        time.sleep(0.2)


# -- inside the daemon --------------------------------------------------------------------------------
def _serialised(app: Any, gate: Any, journal: Any) -> Any:
    """moto handles requests concurrently without making a DynamoDB conditional write atomic (its
    werkzeug_app only locks backend lookup); DynamoDB makes it atomic. Serialising DynamoDB requests gives the
    local stage DynamoDB's guarantee. Other services stay concurrent (an SQS long poll must not block S3). The
    services a snapshot keeps pass the snapshot's gate (a snapshot sees no request half done), and each change
    to them is journaled before it is answered (lakehouse/journal.py), when there is a journal."""
    from lakehouse.journal import journaled
    from lakehouse.local_iam import ROUTE, route
    from lakehouse.snapshot import SERVICES, request_service

    lock = threading.Lock()

    def handle(environ: dict[str, Any], start_response: Any, changes: bool) -> Any:
        if changes and journal is not None:
            return journaled(app, journal, environ, start_response)
        return list(app(environ, start_response))

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(ROUTE):  # the stage's own: a component's role credentials
            return route(environ, start_response, ACCOUNT)
        service, changes = request_service(environ)
        if service not in SERVICES:
            return app(environ, start_response)
        with gate.shared(changes):
            if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
                return handle(environ, start_response, changes)
            with lock:
                return handle(environ, start_response, changes)

    return wsgi


def moto_app() -> Any:
    """moto's WSGI application (every service), as its own server builds it."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # moto's dispatcher lists its own package folder on disk for every request (a third of a request's time,
    # moto/backends.py `list_of_moto_modules`); the folder does not change while the server runs.
    if not hasattr(backends.list_of_moto_modules, "cache_info"):
        backends.list_of_moto_modules = functools.cache(lambda listed=backends.list_of_moto_modules: tuple(listed()))
    return DomainDispatcherApplication(create_backend_app)


def serve_moto(port: int, gate: Any = None, app: Any = None, journal: Any = None, fd: int | None = None) -> Any:
    """moto on a loopback port, in this process (on the listening socket `fd` if given); `gate` and `journal`: the
    snapshot's and the journal's (lakehouse/snapshot.py, lakehouse/journal.py), when the stage keeps its data."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    from lakehouse.limits import enforced
    from lakehouse.snapshot import Gate

    server = make_server(
        "127.0.0.1",
        port,
        enforced(_serialised(app or moto_app(), gate or Gate(), journal)),  # AWS's size limits moto lacks
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=fd,
    )
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    return server


def _sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands a function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def poll_forever(stop: threading.Event, region: str, workers: int = 2) -> None:
    """Play Lambda's SQS event source mapping for the `validate` function, with `workers` concurrency."""
    from chalice.app import SQSEventConfig
    from chalice.test import Client

    import app as lakehouse_app
    from chalicelib.aws import acting_as, client
    from chalicelib.config import load_settings
    from lakehouse.local_iam import credentials_for
    from lakehouse.paths import CONFIG_DIR

    stage = load_settings(CONFIG_DIR).stage(STAGE)  # the configuration `up` provisions the stage from

    queue_name = os.environ["LAKEHOUSE_INGEST_QUEUE"]
    # its batch size, as on AWS
    (source,) = [s for s in lakehouse_app.app.event_sources if isinstance(s, SQSEventConfig) and s.name == "validate"]

    def worker(invoke: Callable[[str, dict[str, Any]], Any]) -> None:
        url: str | None = None
        arn = ""
        while not stop.is_set():
            try:
                if url is None:  # the mapping names its queue by ARN: the stage looks it up, not the function's role
                    url = client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
                    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                    arn = attributes["Attributes"]["QueueArn"]
                # the event source mapping polls with the function's role (ReceiveMessage, DeleteMessage,
                # GetQueueAttributes: Lambda developer guide, SQS event source), and the function runs as it
                with acting_as(credentials_for("lambda:validate", stage)):
                    sqs = client("sqs")
                    messages = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=source.batch_size, WaitTimeSeconds=1, AttributeNames=["All"]
                    ).get("Messages", [])
                    if not messages:
                        continue
                    invoke("validate", _sqs_event(messages, arn, region))
                    sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                    )
            except Exception as exc:  # as on Lambda: the batch becomes visible again after the timeout
                print(f"validate failed, batch will be retried: {exc}", flush=True)
                time.sleep(0.5)

    with Client(lakehouse_app.app, stage_name=STAGE, project_dir=str(PROJECT_DIR)) as chalice_client:
        threads = [
            threading.Thread(target=worker, args=(chalice_client.lambda_.invoke,), daemon=True) for _ in range(workers)
        ]
        for thread in threads:
            thread.start()
        stop.wait()


def schedule_forever(stop: threading.Event, every: float) -> None:
    """Play the `batcher` schedule (EventBridge, every minute on AWS): look at the ledger and start a pipeline
    run when one is due. The run executes here, in the local stage's process."""
    from datetime import UTC, datetime

    from chalicelib import runtime
    from lakehouse.jobs import LocalChores
    from lakehouse.orchestration import local_pipeline

    chores = LocalChores()  # the run lock of an ended housekeeping run, and the housekeeping schedule
    while not stop.wait(every):
        try:
            rt = runtime.current()  # the configuration published in the bucket, as the batcher Lambda reads it
            if done := chores.tick(rt.settings, rt.stage, datetime.now(UTC)):
                print(f"schedules: {done}", flush=True)
            with local_pipeline(rt.settings, rt.stage, EXECUTIONS_DIR) as (pipeline, orchestrator):
                tick = pipeline.tick()
            if tick.action == "started":
                status = orchestrator.finished[-1]["status"] if orchestrator.finished else "?"
                print(f"batcher: {tick.run} {status} ({tick.detail})", flush=True)
            for file_id in tick.announced:  # its validator died with an earlier stage process (pipeline/recovery.py)
                print(f"batcher: announced again {file_id}, left RECEIVED", flush=True)
        except Exception as exc:  # e.g. not provisioned yet; the next tick tries again, as the schedule would
            print(f"batcher: {type(exc).__name__}: {exc}", flush=True)


def serve(port: int, region: str, fd: int | None = None) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    from chalicelib.aws import Credentials
    from deploy.chalice_project import chalice_stage_env
    from lakehouse import snapshot
    from lakehouse.journal import Journal
    from lakehouse.local_iam import ENFORCE_ENV, enforce, enforced

    os.environ.update({**chalice_stage_env(STAGE), **LocalStage(os.getpid(), port, region).environment()})
    app = moto_app()
    try:  # before the endpoint answers: nothing sees the stage half restored
        restored = snapshot.restore(SNAPSHOT_DIR, app)
    except LocalStageError as exc:
        RESTORE_FILE.write_text(json.dumps({"error": str(exc)}))
        raise SystemExit(3) from None
    manifest = restored["manifest"]
    unclean = bool(restored["replayed"] or restored["failed"]) or (manifest is not None and not manifest["clean"])
    RESTORE_FILE.write_text(json.dumps({**restored, "unclean": unclean}))
    gate, journal = snapshot.Gate(), Journal(SNAPSHOT_DIR, restored["next_journal"])
    gate.changes = restored["replayed"]  # the next snapshot takes them in, and the journal files go
    iam = "IAM enforced" if enforced() else f"IAM not enforced ({ENFORCE_ENV}=0)"
    if enforced():  # for the process's life: a component runs as its role (lakehouse/local_iam.py)
        enforce(ACCOUNT, Credentials(*DUMMY_CREDENTIALS.values()))
    server = serve_moto(port, gate, app, journal, fd)
    stop, forget = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `down`: keep the data

    def discard(*_: Any) -> None:  # `down --discard`: no snapshot to take
        forget.set()
        stop.set()

    signal.signal(signal.SIGUSR1, discard)
    threading.Thread(
        target=snapshot.keep_saving,
        args=(SNAPSHOT_DIR, gate, stop, float(os.environ.get(SNAPSHOT_ENV, "10")), journal),
        daemon=True,
    ).start()
    every = _batcher_seconds()
    if every > 0:
        threading.Thread(target=schedule_forever, args=(stop, every), daemon=True).start()
    print(f"local stage: moto on 127.0.0.1:{port}, {iam}, validate poller, batcher every {every:g} s", flush=True)
    try:
        poll_forever(stop, region)
    finally:
        code = 0
        if not forget.is_set():
            try:
                manifest = snapshot.save(SNAPSHOT_DIR, gate, clean=True, journal=journal)  # what `up` brings back
                print(f"snapshot: {manifest['counts']} in {manifest['bytes']:,} bytes", flush=True)
            except Exception as exc:  # the last periodic snapshot stays; `up` will say it is not a clean one
                print(f"snapshot: {type(exc).__name__}: {exc}", flush=True)
                code = 1
        server.shutdown()
        # Its data is on disk: threads a run in flight left behind must not keep a stopped stage alive.
        os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else None)
    else:
        sys.exit("usage: python -m lakehouse.localstage serve PORT REGION [LISTENING_FD]")
