"""The production manifests (docker-compose, Dockerfile, Kubernetes) agree with the code they deploy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack.local import BUCKETS, DATABASES, SERVICE_PORTS

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
K8S = sorted((INFRA / "k8s").glob("*.yaml"))
# Variables the project's clients read from the environment (the stack env file sets them too).
CODE_ENV = {"MLFLOW_TRACKING_URI", "HLIP_S3_ENDPOINT_URL", "HLIP_OPTUNA_STORAGE", "HLIP_PARAMS", "HLIP_DEID_KEY"}
LIBRARY_ENV = {  # read by MLflow, boto3/DVC, Prefect, NCCL and torchrun, not by our code
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_DATABASE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "PREFECT_API_URL", "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_DATABASE_CONNECTION_URL", "NCCL_DEBUG", "POSTGRES_USER",
    "POSTGRES_PASSWORD", "HLIP_DB_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
}  # fmt: skip


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    yield from pod.get("containers", [])


def _code_env_names() -> set[str]:
    """Every environment variable name the project's code reads (os.environ / getenv / *_ENV constants)."""
    names: set[str] = set()
    for path in [*(REPO / "hlip").rglob("*.py"), *(REPO / "flows").rglob("*.py")]:
        text = path.read_text()
        names |= set(re.findall(r"environ(?:\.get)?[\[(]\s*\"([A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"getenv\(\s*\"([A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"_ENV\w*\s*=\s*\(?\s*\"([A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"from_env\(\s*\"([A-Z0-9_]+)\"", text))
    return names


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((INFRA / "docker-compose.yml").read_text()))


def test_every_manifest_parses_and_k8s_objects_are_complete() -> None:
    assert K8S
    kinds = set()
    for path in K8S:
        for doc in _docs(path):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
            assert doc["metadata"].get("namespace") == "hlip", f"{path.name}: {doc['metadata']}"
            kinds.add(doc["kind"])
    assert {"Job", "Deployment", "Service", "ConfigMap"} <= kinds
    assert set(_compose()["services"]) >= {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker",
                                           "trainer"}  # fmt: skip


def test_code_env_names_are_the_ones_the_code_reads() -> None:
    read = _code_env_names()
    assert read >= CODE_ENV, f"the code no longer reads {CODE_ENV - read}"


def test_manifests_set_only_variables_that_something_reads() -> None:
    known = CODE_ENV | LIBRARY_ENV
    used: set[str] = set()
    for path in K8S:
        for doc in _docs(path):
            for container in _containers(doc):
                used |= {e["name"] for e in container.get("env", [])}
    for service in _compose()["services"].values():
        used |= set(service.get("environment") or {})
    assert used - known == set(), f"variables nothing reads: {used - known}"


def test_entry_point_modules_exist() -> None:
    modules = set()
    for path in K8S:
        for doc in _docs(path):
            for container in _containers(doc):
                argv = [*container.get("command", []), *container.get("args", [])]
                modules |= {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-m"}
    for service in _compose()["services"].values():
        argv = service.get("command") or []
        if isinstance(argv, list):
            modules |= {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-m"}
    assert "flows.ingest" in modules
    for module in sorted(modules):
        path = REPO / (module.replace(".", "/") + ".py")
        if module == "flows.pretrain" and not path.exists():
            pytest.skip("flows/pretrain.py is not in the tree yet")
        assert path.is_file(), f"{module} is referenced by a manifest but {path} does not exist"


def test_ports_match_the_stack_constants() -> None:
    compose = _compose()["services"]
    published = {name: int(s["ports"][0].rsplit(":", 1)[1]) for name, s in compose.items() if s.get("ports")}
    assert published == {"postgres": SERVICE_PORTS["postgres"], "minio": SERVICE_PORTS["s3"],
                         "mlflow": SERVICE_PORTS["mlflow"], "prefect-server": SERVICE_PORTS["prefect"]}  # fmt: skip
    for path in K8S:
        text = path.read_text()
        for match in re.findall(r"(mlflow|prefect-server|minio)\.hlip\.svc:(\d+)", text):
            service = {"mlflow": "mlflow", "prefect-server": "prefect", "minio": "s3"}[match[0]]
            assert int(match[1]) == SERVICE_PORTS[service], f"{path.name}: {match}"


def test_databases_and_buckets_match_the_stack() -> None:
    init = (INFRA / "docker" / "postgres-init.sh").read_text()
    assert set(re.findall(r"CREATE DATABASE (\w+)", init)) == set(DATABASES)
    compose = (INFRA / "docker-compose.yml").read_text()
    assert all(f"s3/{bucket}" in compose for bucket in BUCKETS.values())


def test_dockerfile_copies_files_that_exist() -> None:
    text = (INFRA / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert "requirements.lock" in text


def test_ingest_job_params_are_a_valid_ingest_block() -> None:
    from hlip.data.config import split_ingest_block

    configmap = next(d for d in _docs(INFRA / "k8s" / "ingest-dask.yaml") if d["kind"] == "ConfigMap")
    block = yaml.safe_load(configmap["data"]["params.yaml"])["ingest"]
    parts, _, config = split_ingest_block(block)
    assert config.dask_scheduler == f"tcp://dask-scheduler.hlip.svc:{8786}"
    assert all(spec["dicom"].startswith("s3://") for spec in parts.values())
