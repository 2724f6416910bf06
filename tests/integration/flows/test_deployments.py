"""infra/prefect.yaml: every entrypoint is a real flow, schedules are valid, and the deployments register against
the Prefect test harness server (the session fixture in conftest.py), through Python and through `prefect deploy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.deploy import PREFECT_FILE, ensure_work_pools, load_flow, load_specs, load_work_pools, runner_deployments

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
PREFECT_YAML = REPO / PREFECT_FILE


def test_every_entrypoint_is_a_flow_and_every_schedule_is_valid() -> None:
    from prefect.schedules import validate_cron_string

    specs = {s.name: s for s in load_specs(PREFECT_YAML)}
    assert {"nightly", "watch-data", "pretrain-gpu"} <= set(specs)
    for spec in specs.values():
        assert load_flow(spec.entrypoint).name  # imports flows/<module>.py and finds the flow function
        for schedule in spec.schedules:
            if "cron" in schedule:
                validate_cron_string(schedule["cron"])
    assert specs["nightly"].schedules == ({"cron": "0 2 * * *", "timezone": "UTC"},)
    assert specs["watch-data"].schedules[0]["interval"] <= 900
    assert (specs["pretrain-gpu"].work_pool, specs["pretrain-gpu"].concurrency_limit) == ("gpu", 1)
    assert load_work_pools(PREFECT_YAML)["gpu"]["concurrency_limit"] == 1


async def read_deployments() -> dict[str, dict[str, object]]:
    from prefect import get_client

    async with get_client() as client:
        deployments = await client.read_deployments()
        flows = {f.id: f.name for f in await client.read_flows()}
        pools = {p.name: p.concurrency_limit for p in await client.read_work_pools()}
    return {
        f"{flows[d.flow_id]}/{d.name}": {
            "pool": d.work_pool_name,
            "pool_limit": pools.get(d.work_pool_name or ""),
            "crons": [getattr(s.schedule, "cron", None) for s in d.schedules],
            "intervals": [getattr(s.schedule, "interval", None) for s in d.schedules],
            "limit": d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
        }
        for d in deployments
    }


def test_deployments_register_with_their_pools_schedules_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.chdir(REPO)
    asyncio.run(ensure_work_pools(load_work_pools(PREFECT_YAML)))
    specs = load_specs(PREFECT_YAML)
    for spec, deployment in zip(specs, runner_deployments(specs), strict=True):
        deployment.apply(work_pool_name=spec.work_pool)
    got = asyncio.run(read_deployments())
    assert got["pipeline/nightly"]["crons"] == ["0 2 * * *"]
    assert got["pipeline/nightly"]["pool"] == "cpu"
    assert got["watch/watch-data"]["intervals"][0].total_seconds() == 300  # type: ignore[index, union-attr]
    assert got["pretrain/pretrain-gpu"]["pool"] == "gpu"
    assert got["pretrain/pretrain-gpu"]["pool_limit"] == 1
    assert got["pretrain/pretrain-gpu"]["limit"] == 1


def test_prefect_deploy_cli_registers_every_deployment(tmp_path: Path) -> None:
    import asyncio

    from prefect.settings import PREFECT_API_URL

    asyncio.run(ensure_work_pools(load_work_pools(PREFECT_YAML)))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "HLIP_REPO_DIR": str(REPO),
           "PREFECT_HOME": str(tmp_path)}  # fmt: skip
    prefect = Path(sys.executable).with_name("prefect")
    out = subprocess.run([str(prefect), "--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), "--all"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got = asyncio.run(read_deployments())
    names = {f"{load_flow(s.entrypoint).name}/{s.name}" for s in load_specs(PREFECT_YAML)}
    assert names <= set(got)


def test_watch_fires_only_when_the_source_listing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.watch import watch_flow
    from hlip.data.fingerprint import source_fingerprint

    monkeypatch.chdir(tmp_path)
    dicom = tmp_path / "raw" / "dicom"
    dicom.mkdir(parents=True)
    (dicom / "a.dcm").write_bytes(b"x" * 10)
    first, count = source_fingerprint(dicom)
    assert count == 1
    (dicom / "b.dcm").write_bytes(b"y")
    second, count = source_fingerprint(dicom)
    assert (count, second != first) == (2, True)
    assert source_fingerprint(tmp_path / "missing") == ("", 0)
    Path("params.yaml").write_text(json.dumps({"ingest": {"parts": {"train": {"dicom": str(dicom)}}}}))
    Path("state.json").write_text(json.dumps({"train/dicom": second}))
    assert watch_flow(state="state.json") == {"triggered": False, "changed": []}
