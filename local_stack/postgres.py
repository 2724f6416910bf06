"""PostgreSQL 15 as a local server: a private cluster (``initdb``) on 127.0.0.1 with SCRAM passwords.

The cluster lives in one folder (data, unix socket, log). PostgreSQL refuses to run as root: when the
project runs as root, the server runs as the ``postgres`` system user (installed with the Debian package).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from local_stack.process import LOOPBACK, ManagedServer, as_user, free_port, port_open

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "hlip_admin"


class DatabaseError(RuntimeError):
    """A database could not be reached or refused us; the message never holds a password."""


def pg_binary(name: str) -> str:
    """Path of a PostgreSQL server binary (Debian's versioned folder first, then PATH)."""
    local = PG_BIN / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name!r} is missing: install the postgresql-15 package (make setup)")
    return found


def server_user() -> str | None:
    """The user the server must run as: None (ourselves) unless we are root, then ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise DatabaseError("running as root needs the 'postgres' system user (postgresql-15 package)") from exc
    return "postgres"


class PostgreSQL(ManagedServer):
    """A PostgreSQL cluster in `root`, listening on 127.0.0.1:`port` and a unix socket inside `root`.

    Args:
        root: Folder of the cluster: ``data/`` (PGDATA), ``run/`` (socket), ``postgres.log``.
        superuser_password: Password of the cluster's superuser ``hlip_admin`` (set at ``initdb``).
        port: TCP port (a free one when omitted).
    """

    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, close clients, exit
    signal_group = False  # the postmaster stops its own backends

    def __init__(self, root: Path, superuser_password: str, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.data_dir = root / "data"
        self.socket_dir = root / "run"
        self._superuser_password = superuser_password
        argv = [
            pg_binary("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]
        super().__init__("postgres", argv, root / "postgres.log", ready=self._ready, user=server_user())

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts logins."""
        self.initialize()
        super().start(timeout)

    def initialize(self) -> None:
        """``initdb`` with SCRAM authentication for every connection, unless the cluster exists."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._give_to_server_user(self.socket_dir)
        if (self.data_dir / "PG_VERSION").is_file():
            return
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as pw:
            pw.write(self._superuser_password + "\n")
        pwfile = Path(pw.name)
        try:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            self._give_to_server_user(self.data_dir, pwfile)
            argv = [pg_binary("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                    "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=False, **as_user(self.user))
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise DatabaseError(f"initdb failed in {self.data_dir}:\n{done.stdout}\n{done.stderr}")

    def url(self, user: str, password: str, database: str, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL (``postgresql+<driver>://``) for `database` as `user`."""
        return f"postgresql+{driver}://{user}:{password}@{LOOPBACK}:{self.port}/{database}"

    def ensure_databases(self, role: str, password: str, databases: tuple[str, ...]) -> None:
        """Create (or update) the login `role` with `password` and the `databases` it owns; idempotent."""
        import psycopg
        from psycopg import sql

        with self._connect("postgres") as conn:
            conn.autocommit = True
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), password))
            for name in databases:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role))
                    )
            for name in databases:  # PostgreSQL 15: the public schema is no longer writable by everyone
                with psycopg.connect(**self._params(name), autocommit=True) as db:
                    db.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))

    def _connect(self, database: str):  # type: ignore[no-untyped-def]
        import psycopg

        try:
            return psycopg.connect(**self._params(database))
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot log in to PostgreSQL at {LOOPBACK}:{self.port} as {SUPERUSER}") from exc

    def _params(self, database: str) -> dict[str, Any]:
        return {"host": LOOPBACK, "port": self.port, "user": SUPERUSER, "password": self._superuser_password,
                "dbname": database, "connect_timeout": 3}  # fmt: skip

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        import psycopg

        try:
            with psycopg.connect(**self._params("postgres")) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _give_to_server_user(self, *paths: Path) -> None:
        """Hand folders to the server user and let it reach them (only when we run as root)."""
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in [self.root, *self.root.parents]:  # the server user must traverse every ancestor
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
