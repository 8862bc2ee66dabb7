"""The one place that builds boto3 clients.

Region, botocore's retry mode (`standard` or `adaptive`: throttling is absorbed there, not by home-made
decorators) and the endpoint override for the local stage are decided here and nowhere else.
boto3 is imported lazily so that importing `app.py` stays cheap on cold start.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from chalicelib.config.model import Stage
from chalicelib.errors import ConfigError

ENDPOINT_ENV = "AWS_ENDPOINT_URL"  # honoured by boto3 and the AWS CLI as well


@dataclass(frozen=True)
class ClientSettings:
    region: str
    retry_mode: str = "standard"
    max_attempts: int = 5
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, region: str | None = None, retry_mode: str = "standard", max_attempts: int = 5) -> ClientSettings:
        return cls(
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            retry_mode=os.environ.get("LAKEHOUSE_RETRY_MODE", retry_mode),
            max_attempts=int(os.environ.get("LAKEHOUSE_MAX_ATTEMPTS", max_attempts)),
            endpoint_url=os.environ.get(ENDPOINT_ENV) or None,
        )

    @classmethod
    def for_stage(cls, stage: Any) -> ClientSettings:
        """The region and retry policy a stage declares (endpoint and credentials still from the environment)."""
        if stage.needs_account:  # a default bucket name still says "{account}": a wiring error, caught before AWS
            raise ConfigError(
                "lakehouse.toml",
                f"stages.{stage.name}.bucket",
                stage.bucket,
                "needs the AWS account: Settings.for_account",
            )
        return cls.from_env(stage.region, stage.retry_mode, stage.max_attempts)


_lock = threading.Lock()
_cache: dict[tuple[str, ClientSettings], Any] = {}
_session: Any = None  # one boto3 session while the cache lives: it resolves credentials once
_loader: Any = None  # botocore's service models, read from disk once per process and shared by every session


def client(service: str, settings: ClientSettings | None = None) -> Any:
    """A cached boto3 client for `service` (clients are thread-safe; sessions are not, hence the lock)."""
    settings = settings or ClientSettings.from_env()
    key = (service, settings)
    with _lock:
        if key not in _cache:
            from botocore.config import Config

            config = Config(
                region_name=settings.region,
                retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
            )
            _cache[key] = _boto3_session().client(service, config=config, endpoint_url=settings.endpoint_url)
        return _cache[key]


def _boto3_session() -> Any:
    """The session clients are made from (under the lock: sessions are not thread-safe). A new botocore session
    would read every service model from disk again; its `data_loader` component is the shared, caching loader."""
    global _session, _loader
    if _session is None:
        import boto3
        import botocore.loaders
        import botocore.session

        _loader = _loader or botocore.loaders.create_loader()
        core = botocore.session.Session()
        core.register_component("data_loader", _loader)
        _session = boto3.session.Session(botocore_session=core)
    return _session


def clear_cache() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials)."""
    global _session
    with _lock:
        _cache.clear()
        _session = None


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_accounts: dict[int, str] = {}


def account_id(sts: Any) -> str:
    """The caller's AWS account (asked once per client)."""
    if id(sts) not in _accounts:
        _accounts[id(sts)] = sts.get_caller_identity()["Account"]
    return _accounts[id(sts)]


@dataclass(frozen=True)
class Clients:
    s3: Any
    dynamodb: Any
    sqs: Any
    sns: Any
    glue: Any
    sts: Any
    stepfunctions: Any
    athena: Any
    iam: Any
    apigateway: Any

    @classmethod
    def for_stage(cls, stage: Stage) -> Clients:
        from chalicelib.aws import ClientSettings, client

        settings = ClientSettings.for_stage(stage)
        names = ("s3", "dynamodb", "sqs", "sns", "glue", "sts", "stepfunctions", "athena", "iam", "apigateway")
        return cls(*(client(name, settings) for name in names))
