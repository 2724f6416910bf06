"""Deployments of the pipeline, read from `infra/prefect.yaml` (the one place they are declared).

- ``python -m flows.deploy``: serve every deployment from this process against a standing Prefect server
  (``PREFECT_API_URL``), with the file's schedules; no work pool or worker needed (local use).
- ``python -m flows.deploy --pools``: create the work pools named in ``definitions.work_pools`` (type and
  concurrency limit), for ``prefect deploy --prefect-file infra/prefect.yaml --all`` and ``prefect worker start``.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

PREFECT_FILE = Path("infra/prefect.yaml")


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of the file: what runs (entrypoint), where (work pool), when (schedules)."""

    name: str
    entrypoint: str
    description: str = ""
    tags: tuple[str, ...] = ()
    work_pool: str | None = None
    schedules: tuple[dict[str, Any], ...] = ()
    concurrency_limit: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def load_specs(path: Path = PREFECT_FILE) -> list[DeploymentSpec]:
    """The deployments declared in `path`."""
    document = yaml.safe_load(path.read_text()) or {}
    specs = []
    for item in document.get("deployments") or []:
        specs.append(
            DeploymentSpec(
                name=item["name"],
                entrypoint=item["entrypoint"],
                description=item.get("description", ""),
                tags=tuple(item.get("tags") or ()),
                work_pool=(item.get("work_pool") or {}).get("name"),
                schedules=tuple(item.get("schedules") or ()),
                concurrency_limit=item.get("concurrency_limit"),
                parameters=dict(item.get("parameters") or {}),
            )
        )
    return specs


def load_work_pools(path: Path = PREFECT_FILE) -> dict[str, dict[str, Any]]:
    """``definitions.work_pools`` of `path`: ``{name: {type, concurrency_limit}}``."""
    document = yaml.safe_load(path.read_text()) or {}
    return dict((document.get("definitions") or {}).get("work_pools") or {})


def load_flow(entrypoint: str) -> Flow[Any, Any]:
    """Import the flow of ``flows/<module>.py:<function>`` (raises when it is missing or not a flow)."""
    from prefect import Flow

    file, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
    candidate = getattr(module, attribute)
    if not isinstance(candidate, Flow):
        raise TypeError(f"{entrypoint}: {attribute} is not a Prefect flow")
    return candidate


def to_schedules(spec: DeploymentSpec) -> list[Schedule]:
    """The spec's schedules as Prefect schedules (a bad cron string raises here)."""
    from prefect.schedules import Cron, Interval

    schedules: list[Schedule] = []
    for item in spec.schedules:
        if "cron" in item:
            schedules.append(Cron(item["cron"], timezone=item.get("timezone")))
        elif "interval" in item:
            schedules.append(Interval(timedelta(seconds=float(item["interval"]))))
        else:
            raise ValueError(f"deployment {spec.name}: schedule {item} has neither cron nor interval")
    return schedules


def runner_deployments(specs: list[DeploymentSpec]) -> list[RunnerDeployment]:
    """Deployments to serve from this process (work pools are not used when serving)."""
    return [
        load_flow(spec.entrypoint).to_deployment(  # type: ignore[misc]  # sync call: a RunnerDeployment
            name=spec.name,
            schedules=to_schedules(spec),
            concurrency_limit=spec.concurrency_limit,
            parameters=spec.parameters,
            description=spec.description,
            tags=list(spec.tags),
        )
        for spec in specs
    ]


async def ensure_work_pools(pools: dict[str, dict[str, Any]]) -> list[str]:
    """Create the missing work pools (type, concurrency limit); returns the names created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    created = []
    async with get_client() as client:
        for name, spec in pools.items():
            pool = WorkPoolCreate(
                name=name, type=spec.get("type", "process"), concurrency_limit=spec.get("concurrency_limit")
            )
            try:
                await client.create_work_pool(pool)
                created.append(name)
            except ObjectAlreadyExists:
                continue
    return created


def main(argv: list[str] | None = None) -> None:
    """Serve the deployments of ``infra/prefect.yaml`` (or, with ``--pools``, create its work pools)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=PREFECT_FILE, help="The prefect.yaml to read.")
    parser.add_argument("--pools", action="store_true", help="Create the work pools and exit.")
    parser.add_argument("--only", nargs="*", help="Serve only these deployment names.")
    args = parser.parse_args(argv)
    if args.pools:
        import asyncio

        print(f"created work pools: {asyncio.run(ensure_work_pools(load_work_pools(args.file))) or 'none'}")
        return
    from prefect import serve

    specs = [s for s in load_specs(args.file) if not args.only or s.name in args.only]
    serve(*runner_deployments(specs))


if __name__ == "__main__":
    main()
