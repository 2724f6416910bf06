"""Local servers for the scale-out path (S3, PostgreSQL, MLflow, Prefect), started on 127.0.0.1 only.

Used by `make stack-up`/`stack-down` (`python -m local_stack up|down|status`) and by the integration tests,
which start the real servers rather than mocks. Nothing here binds any address other than loopback.
"""

from local_stack.local import LocalStack, StackPorts
from local_stack.process import LOOPBACK, ManagedServer, PidFile, free_port
from local_stack.seaweedfs import S3Credentials, SeaweedFS

__all__ = [
    "LOOPBACK",
    "LocalStack",
    "ManagedServer",
    "PidFile",
    "S3Credentials",
    "SeaweedFS",
    "StackPorts",
    "free_port",
]
