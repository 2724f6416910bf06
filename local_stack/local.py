"""The local production-like stack: PostgreSQL, SeaweedFS S3, MLflow (auth on), Prefect server and worker.

Everything binds 127.0.0.1 and lives in one folder (``outputs/stack`` for ``make stack-up``):

    stack.json        ports and generated secrets (mode 0600), reused by every later ``up``
    stack.env         the client environment (mode 0600): ``source`` it and the pipeline uses the stack
    run/<name>.pid    what ``up`` started; ``down`` stops exactly those processes
    postgres/ seaweedfs/ mlflow/ prefect/   data and logs of each component

``up`` is idempotent: a component whose recorded process still runs is left alone, and a stack bucket that was
deleted is created again (the S3 server refuses uploads to a missing bucket rather than creating it). ``status``
names any missing bucket.
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from local_stack.buckets import bucket_problem, check_client
from local_stack.mlflow_server import ADMIN_USER, MLflowServer
from local_stack.postgres import PostgreSQL
from local_stack.prefect_server import PrefectServer, PrefectWorker
from local_stack.process import LOOPBACK, ManagedServer, PidFile, free_port, port_open
from local_stack.seaweedfs import REGION, S3Credentials, SeaweedFS, remove_tmp_sockets

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("outputs/stack")
#: Ports of the services inside containers / the cluster (infra/docker-compose.yml, infra/k8s/).
SERVICE_PORTS = {"postgres": 5432, "s3": 9000, "mlflow": 5000, "prefect": 4200}
#: The local stack adds this offset, so it does not collide with a system PostgreSQL (5432) and friends.
LOCAL_PORT_OFFSET = 50000
DB_ROLE = "hlip"
DATABASES = ("mlflow", "mlflow_auth", "prefect", "optuna")
BUCKETS = {"dvc": "hlip-dvc", "mlflow": "hlip-mlflow", "raw": "hlip-raw"}
WORK_POOL = "hlip-process"
PREFECT_USER = "hlip"
COMPONENTS = ("postgres", "seaweedfs", "mlflow", "prefect-server", "prefect-worker")


@dataclass(frozen=True)
class StackPorts:
    """The loopback ports of the stack's services."""

    postgres: int
    s3: int
    mlflow: int
    prefect: int

    @classmethod
    def local(cls) -> StackPorts:
        """The fixed ports of ``make stack-up``: the service ports plus `LOCAL_PORT_OFFSET`."""
        return cls(**{name: LOCAL_PORT_OFFSET + port for name, port in SERVICE_PORTS.items()})

    @classmethod
    def free(cls) -> StackPorts:
        """Free ports (tests run their own stack beside a developer's)."""
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class StackSecrets:
    """Passwords generated at the first ``up``; they are written only to files of mode 0600."""

    postgres_superuser: str
    postgres_app: str
    s3_access_key: str
    s3_secret_key: str
    mlflow_admin: str
    prefect_auth: str

    @classmethod
    def generate(cls) -> StackSecrets:
        """Fresh random secrets."""
        s3 = S3Credentials.generate()
        token = secrets.token_urlsafe
        return cls(token(24), token(24), s3.access_key, s3.secret_key, token(24), token(24))

    def values(self) -> list[str]:
        """Every secret value (what must never appear in git, logs or MLflow); the access key id is public."""
        return [v for k, v in asdict(self).items() if k != "s3_access_key"]

    def __repr__(self) -> str:
        return "StackSecrets(***)"


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (created 0600 before any byte is written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


class LocalStack:
    """The stack in `root`.

    Args:
        root: The stack folder.
        ports: Ports to use when the stack is created (later runs reuse the recorded ones).
        workdir: The project checkout the Prefect worker runs flows in.
    """

    def __init__(self, root: Path = DEFAULT_ROOT, ports: StackPorts | None = None, workdir: Path | None = None) -> None:
        self.root = root.resolve()
        self.workdir = (workdir or Path.cwd()).resolve()
        state = self.root / "stack.json"
        if state.is_file():
            recorded = json.loads(state.read_text())
            self.ports = StackPorts(**recorded["ports"])
            self.secrets = StackSecrets(**recorded["secrets"])
        else:
            self.ports = ports or StackPorts.local()
            self.secrets = StackSecrets.generate()
            _write_private(state, json.dumps({"ports": asdict(self.ports), "secrets": asdict(self.secrets)}, indent=2))
        self.components = self._components()

    # ----------------------------------------------------------------- wiring

    @property
    def env_file(self) -> Path:
        """The client environment file."""
        return self.root / "stack.env"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.mlflow}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.prefect}/api"

    def database_url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of one of the stack's databases, as the application role."""
        return self.postgres.url(DB_ROLE, self.secrets.postgres_app, database, driver)

    def s3_env(self) -> dict[str, str]:
        """S3 endpoint and keys for boto3, DVC (dvc-s3), MLflow and the ingest source."""
        return {
            "AWS_ACCESS_KEY_ID": self.secrets.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.secrets.s3_secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "HLIP_S3_ENDPOINT_URL": self.s3_endpoint,
        }

    def client_env(self) -> dict[str, str]:
        """Everything a pipeline process needs to use the stack instead of the embedded defaults."""
        return {
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
            "MLFLOW_TRACKING_PASSWORD": self.secrets.mlflow_admin,
            # retry 5xx / connection errors for about 15 s (a restarting database or S3), not MLflow's 2 minutes
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            **self.s3_env(),
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_API_AUTH_STRING": self._prefect_auth,
            "HLIP_OPTUNA_STORAGE": self.database_url("optuna"),
            "HLIP_DVC_REMOTE_URL": f"s3://{BUCKETS['dvc']}",
            "HLIP_PREFECT_WORK_POOL": WORK_POOL,
        }

    @property
    def _prefect_auth(self) -> str:
        return f"{PREFECT_USER}:{self.secrets.prefect_auth}"

    def _components(self) -> dict[str, ManagedServer]:
        self.postgres = PostgreSQL(self.root / "postgres", self.secrets.postgres_superuser, self.ports.postgres)
        credentials = S3Credentials(self.secrets.s3_access_key, self.secrets.s3_secret_key)
        self.seaweedfs = SeaweedFS(self.root / "seaweedfs", tuple(BUCKETS.values()), credentials, self.ports.s3)
        server_s3 = {k: v for k, v in self.s3_env().items() if k != "HLIP_S3_ENDPOINT_URL"}
        self.mlflow = MLflowServer(
            self.root / "mlflow",
            backend_uri=self.database_url("mlflow"),
            auth_db_uri=self.database_url("mlflow_auth"),
            artifacts_destination=f"s3://{BUCKETS['mlflow']}/artifacts",
            admin_password=self.secrets.mlflow_admin,
            s3_env=server_s3,
            port=self.ports.mlflow,
        )
        self.prefect = PrefectServer(
            self.root / "prefect", self.database_url("prefect", "asyncpg"), self._prefect_auth, self.ports.prefect
        )
        self.worker = PrefectWorker(self.root / "prefect", self.prefect_api_url, self._prefect_auth, WORK_POOL,
                                    self.workdir)  # fmt: skip
        servers: list[ManagedServer] = [self.postgres, self.seaweedfs, self.mlflow, self.prefect, self.worker]
        return {s.name: s for s in servers}

    def pidfile(self, name: str) -> PidFile:
        """The pidfile of component `name`."""
        return PidFile(self.root / "run" / f"{name}.pid")

    # ----------------------------------------------------------------- lifecycle

    def up(self, timeout: float = 180.0) -> dict[str, float]:
        """Start every component not already running; return the seconds each start took (0 = was running).

        On a failure, the components this call started are stopped again and the error names the component.
        """
        started: list[str] = []
        seconds: dict[str, float] = {}
        try:
            for name, server in self.components.items():
                if self.pidfile(name).running_pid() is not None:
                    seconds[name] = 0.0
                else:
                    t0 = time.monotonic()
                    server.start(timeout)
                    server.write_pidfile(self.pidfile(name).path)
                    started.append(name)
                    seconds[name] = round(time.monotonic() - t0, 1)
                    if name == "postgres":
                        self.postgres.ensure_databases(DB_ROLE, self.secrets.postgres_app, DATABASES)
                if name == "seaweedfs" and (created := self.seaweedfs.ensure_buckets()):
                    log.info("created missing buckets: %s", ", ".join(created))  # S3 never creates one on upload
        except BaseException:
            for name in reversed(started):
                self._stop(name)
            raise
        self.write_env_file()
        return seconds

    def down(self) -> list[str]:
        """Stop the processes ``up`` recorded (newest first); return the names of those that were running."""
        return [name for name in reversed(COMPONENTS) if self._stop(name)]

    def restart(self, name: str, pause: float = 0.0) -> None:
        """Stop component `name`, wait `pause` seconds, start it again (fault tests, config changes)."""
        self._stop(name)
        time.sleep(pause)
        self.components[name].start()
        self.components[name].write_pidfile(self.pidfile(name).path)

    def _stop(self, name: str) -> bool:
        t0 = time.monotonic()
        was_running = self.pidfile(name).stop()
        if name == "seaweedfs":
            remove_tmp_sockets(self.seaweedfs.root)  # stopped from another process than the one that started it
        if was_running:
            log.info("%s stopped in %.1f s", name, time.monotonic() - t0)
        proc = self.components[name].proc
        if proc is not None:  # started by this very process: reap it so no zombie stays behind
            proc.wait(10)
        return was_running

    def status(self) -> list[dict[str, object]]:
        """One row per component: name, pid (None when not running), port, healthy, problem (a reason or None).

        A running S3 server missing one of the stack's buckets is unhealthy; its problem names each bucket.
        """
        ports = {"postgres": self.ports.postgres, "seaweedfs": self.ports.s3, "mlflow": self.ports.mlflow,
                 "prefect-server": self.ports.prefect, "prefect-worker": None}  # fmt: skip
        rows: list[dict[str, object]] = []
        for name, server in self.components.items():
            pid = self.pidfile(name).running_pid()
            healthy, problem = bool(pid and server.ready()), None
            if name == "seaweedfs" and pid and port_open(self.ports.s3) and (problems := self.bucket_problems()):
                healthy, problem = False, "; ".join(problems)
            rows.append({"name": name, "pid": pid, "port": ports[name], "healthy": healthy, "problem": problem})
        return rows

    def bucket_problems(self) -> list[str]:
        """One line per stack bucket that is missing or refused (naming bucket and endpoint); empty when all are fine.

        The preflight for anything that writes to the stack's S3: a missing bucket is refused on upload, never
        created (`make stack-up` creates them again).
        """
        client = check_client(self.s3_env())
        return [problem for bucket in BUCKETS.values() if (problem := bucket_problem(client, bucket))]

    def running_pids(self) -> list[int]:
        """Pids of the recorded processes that still run."""
        return [pid for name in COMPONENTS if (pid := self.pidfile(name).running_pid()) is not None]

    def write_env_file(self) -> Path:
        """Write `stack.env` (mode 0600): ``source`` it to point the pipeline at the stack."""
        lines = ["# Generated by `make stack-up`: the environment that points the pipeline at the local stack.",
                 "# Holds secrets: mode 0600, git-ignored (outputs/). `source` it, never commit it."]  # fmt: skip
        lines += [f"export {key}={shlex.quote(value)}" for key, value in self.client_env().items()]
        _write_private(self.env_file, "\n".join(lines) + "\n")
        return self.env_file
