"""Local servers for the scale-out path (S3, PostgreSQL, MLflow, Prefect), started on 127.0.0.1 only.

Used by `make stack-up`/`stack-down` and by the integration tests, which start the real servers rather than
mocks. Nothing here binds any address other than loopback.
"""

from hlip.stack.process import LOOPBACK, ManagedServer, free_port
from hlip.stack.seaweedfs import S3Credentials, SeaweedFS

__all__ = ["LOOPBACK", "ManagedServer", "S3Credentials", "SeaweedFS", "free_port"]
