"""The one place that builds boto3 clients.

Region, botocore's retry mode (`standard` or `adaptive`: throttling is absorbed there, not by home-made
decorators) and the endpoint override for the local stage are decided here and nowhere else.
boto3 is imported lazily so that importing `app.py` stays cheap on cold start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

from chalicelib.config.model import RETRY_MODES, RetryMode, Stage
from chalicelib.errors import ConfigError

if TYPE_CHECKING:  # the types-boto3 stubs: types only, nothing of them is imported at run time
    from botocore.client import BaseClient
    from botocore.loaders import Loader
    from botocore.session import Session
    from types_boto3_apigateway import APIGatewayClient
    from types_boto3_athena import AthenaClient
    from types_boto3_cloudwatch import CloudWatchClient
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_glue import GlueClient
    from types_boto3_iam import IAMClient
    from types_boto3_lakeformation import LakeFormationClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_s3 import S3Client
    from types_boto3_service_quotas import ServiceQuotasClient
    from types_boto3_sns import SNSClient
    from types_boto3_sqs import SQSClient
    from types_boto3_stepfunctions import SFNClient
    from types_boto3_sts import STSClient

ENDPOINT_ENV = "AWS_ENDPOINT_URL"  # honoured by boto3 and the AWS CLI as well


@dataclass(frozen=True)
class ClientSettings:
    region: str
    retry_mode: RetryMode = "standard"
    max_attempts: int = 5
    endpoint_url: str | None = None

    @classmethod
    def from_env(
        cls, region: str | None = None, retry_mode: RetryMode = "standard", max_attempts: int = 5
    ) -> ClientSettings:
        return cls(
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            retry_mode=_retry_mode(os.environ.get("LAKEHOUSE_RETRY_MODE", retry_mode)),
            max_attempts=int(os.environ.get("LAKEHOUSE_MAX_ATTEMPTS", max_attempts)),
            endpoint_url=os.environ.get(ENDPOINT_ENV) or None,
        )

    @classmethod
    def for_stage(cls, stage: Stage) -> ClientSettings:
        """The region and retry policy a stage declares (endpoint and credentials still from the environment)."""
        if stage.needs_account:  # a default bucket name still says "{account}": a wiring error, caught before AWS
            raise ConfigError(
                "lakehouse.toml",
                f"stages.{stage.name}.bucket",
                stage.bucket,
                "needs the AWS account: Settings.for_account",
            )
        return cls.from_env(stage.region, stage.retry_mode, stage.max_attempts)


def _retry_mode(value: str) -> RetryMode:
    """LAKEHOUSE_RETRY_MODE checked here: botocore would only refuse it at the first client."""
    for mode in RETRY_MODES:
        if mode == value:
            return mode
    raise ConfigError("environment", "LAKEHOUSE_RETRY_MODE", value, f"must be one of {', '.join(RETRY_MODES)}")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


# Whose credentials clients are made with here: a role's while a component of the local stage runs as it (each
# Lambda handler runs in the `lakehouse` process, lakehouse/local_iam.py), else the environment's, as on AWS.
_acting: ContextVar[Credentials | None] = ContextVar("lakehouse_credentials", default=None)


@contextmanager
def acting_as(credentials: Credentials | None) -> Iterator[None]:
    """Clients made in this block (in this thread or task) sign with `credentials` (None: the environment's)."""
    token = _acting.set(credentials)
    try:
        yield
    finally:
        _acting.reset(token)


def acting() -> Credentials | None:
    """The credentials `acting_as` set here, if any."""
    return _acting.get()


_lock = threading.Lock()
_cache: dict[tuple[str, ClientSettings, Credentials | None], BaseClient] = {}
_session: Session | None = None  # one session while the cache lives: it resolves credentials once
_loader: Loader | None = None  # botocore's service models, read from disk once per process and shared by every session


# The typed accessors: one overload per service the project calls, so `client("s3")` is an S3Client to the checker.
@overload
def client(service: Literal["s3"], settings: ClientSettings | None = None) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], settings: ClientSettings | None = None) -> DynamoDBClient: ...
@overload
def client(service: Literal["sqs"], settings: ClientSettings | None = None) -> SQSClient: ...
@overload
def client(service: Literal["sns"], settings: ClientSettings | None = None) -> SNSClient: ...
@overload
def client(service: Literal["glue"], settings: ClientSettings | None = None) -> GlueClient: ...
@overload
def client(service: Literal["sts"], settings: ClientSettings | None = None) -> STSClient: ...
@overload
def client(service: Literal["stepfunctions"], settings: ClientSettings | None = None) -> SFNClient: ...
@overload
def client(service: Literal["athena"], settings: ClientSettings | None = None) -> AthenaClient: ...
@overload
def client(service: Literal["iam"], settings: ClientSettings | None = None) -> IAMClient: ...
@overload
def client(service: Literal["apigateway"], settings: ClientSettings | None = None) -> APIGatewayClient: ...
@overload
def client(service: Literal["lambda"], settings: ClientSettings | None = None) -> LambdaClient: ...
@overload
def client(service: Literal["lakeformation"], settings: ClientSettings | None = None) -> LakeFormationClient: ...
@overload
def client(service: Literal["service-quotas"], settings: ClientSettings | None = None) -> ServiceQuotasClient: ...
@overload
def client(service: Literal["cloudwatch"], settings: ClientSettings | None = None) -> CloudWatchClient: ...
def client(service: str, settings: ClientSettings | None = None) -> BaseClient:
    """A cached boto3 client for `service` (clients are thread-safe; sessions are not, hence the lock)."""
    settings = settings or ClientSettings.from_env()
    credentials = _acting.get()
    key = (service, settings, credentials)
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
            given = credentials or Credentials("", "")  # empty: botocore resolves the environment's
            _cache[key] = _session_for_clients().create_client(
                service,
                config=config,
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=given.access_key_id or None,
                aws_secret_access_key=given.secret_access_key or None,
                aws_session_token=given.session_token,
            )
        return _cache[key]


def _session_for_clients() -> Session:
    """The session clients are made from (under the lock: sessions are not thread-safe). A new botocore session
    would read every service model from disk again; its `data_loader` component is the shared, caching loader.
    boto3's Session registers its handlers (S3's upload_file ...) and user agent on it; clients are then made
    with the botocore session's `create_client`, which boto3's `client()` calls with the same arguments and which
    the stubs type for any service name (boto3's is typed per literal name)."""
    global _session, _loader
    if _session is None:
        import boto3
        import botocore.loaders
        import botocore.session

        _loader = _loader or botocore.loaders.create_loader()
        core = botocore.session.Session()
        core.register_component("data_loader", _loader)
        boto3.session.Session(botocore_session=core)
        _session = core
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


def account_id(sts: STSClient) -> str:
    """The caller's AWS account (asked once per client)."""
    if id(sts) not in _accounts:
        _accounts[id(sts)] = sts.get_caller_identity()["Account"]
    return _accounts[id(sts)]


@dataclass(frozen=True)
class Clients:
    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient
    sns: SNSClient
    glue: GlueClient
    sts: STSClient
    stepfunctions: SFNClient
    athena: AthenaClient
    iam: IAMClient
    apigateway: APIGatewayClient
    cloudwatch: CloudWatchClient

    @classmethod
    def for_stage(cls, stage: Stage) -> Clients:
        settings = ClientSettings.for_stage(stage)
        return cls(
            s3=client("s3", settings),
            dynamodb=client("dynamodb", settings),
            sqs=client("sqs", settings),
            sns=client("sns", settings),
            glue=client("glue", settings),
            sts=client("sts", settings),
            stepfunctions=client("stepfunctions", settings),
            athena=client("athena", settings),
            iam=client("iam", settings),
            apigateway=client("apigateway", settings),
            cloudwatch=client("cloudwatch", settings),
        )
