"""The MLflow tracking server with basic authentication: runs in PostgreSQL, artifacts proxied to S3.

Clients reach artifacts through the server (``--serve-artifacts``), so only the server holds S3 keys. The
auth app refuses every request without valid credentials (401); the admin account is created from
``MLFLOW_AUTH_ADMIN_PASSWORD`` at first start, and users without an explicit grant get no permission.

An S3 artifact destination is checked before the server is launched: a missing bucket fails the start at once
with a `BucketError` naming it, instead of every later upload failing after its retries with a bare HTTP 500.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from local_stack.buckets import bucket_of, check_client, require_bucket
from local_stack.process import LOOPBACK, ManagedServer, free_port, port_open

log = logging.getLogger(__name__)

ADMIN_USER = "admin"


def auth_available() -> bool:
    """Whether MLflow's basic-auth app can run: it needs Flask-WTF (the ``mlflow[auth]`` extra)."""
    return importlib.util.find_spec("flask_wtf") is not None


class MLflowServer(ManagedServer):
    """``mlflow server --app-name basic-auth`` on 127.0.0.1.

    Args:
        root: Folder for the auth config and the log.
        backend_uri: Tracking store (``postgresql+psycopg://...``).
        auth_db_uri: Store of users and permissions.
        artifacts_destination: Where proxied artifacts go (``s3://bucket/prefix``; the bucket must exist).
        admin_password: Password of the ``admin`` user.
        s3_env: S3 endpoint and keys for the server's artifact proxy.
        port: HTTP port (a free one when omitted).
        auth: Run the basic-auth app (default: when Flask-WTF is installed; without it the server starts
            with authentication OFF and says so loudly).
    """

    def __init__(
        self,
        root: Path,
        backend_uri: str,
        auth_db_uri: str,
        artifacts_destination: str,
        admin_password: str,
        s3_env: dict[str, str],
        port: int | None = None,
        auth: bool | None = None,
    ) -> None:
        self.root = root
        self.auth = auth_available() if auth is None else auth
        self.port = port or free_port()
        self.artifacts_destination = artifacts_destination
        root.mkdir(parents=True, exist_ok=True)
        config = root / "basic_auth.ini"
        config.touch(mode=0o600)
        config.chmod(0o600)  # holds the auth database URL, password included
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {auth_db_uri}\n"
            f"admin_username = {ADMIN_USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        argv = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            f"--host={LOOPBACK}",
            f"--port={self.port}",
            "--workers=1",
            "--serve-artifacts",
            f"--allowed-hosts={LOOPBACK}:{self.port},localhost:{self.port}",
        ]
        if self.auth:
            argv.append("--app-name=basic-auth")
        env = {
            # secrets travel in the environment, never on the command line (visible in `ps`)
            "MLFLOW_BACKEND_STORE_URI": backend_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination,
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER,
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": admin_password[::-1],
            **s3_env,
        }
        super().__init__("mlflow", argv, root / "mlflow.log", ready=self._ready, env=env)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; warn when authentication is off.

        Raises:
            BucketError: The S3 artifact bucket is missing, refused or unreachable (checked before launching).
        """
        self.check_artifact_bucket()
        if not self.auth:
            log.warning("MLflow authentication is OFF: Flask-WTF is missing (install the mlflow[auth] extra)")
        super().start(timeout)

    def check_artifact_bucket(self) -> None:
        """Raise `BucketError` naming bucket and endpoint unless the S3 artifact bucket exists (no-op off S3).

        The check uses the server's own S3 settings (its environment over this process's), as the server would.
        """
        bucket = bucket_of(self.artifacts_destination)
        if bucket is not None:
            require_bucket(check_client({**os.environ, **self.env}), bucket, "MLflow artifacts destination")

    @property
    def url(self) -> str:
        """The tracking URI."""
        return f"http://{LOOPBACK}:{self.port}"

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
