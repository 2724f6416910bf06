"""The real scoring server (`mlflow models serve --env-manager local` on 127.0.0.1) under the request-safety
policy: studies sent as zip archives or named under the allowed root are scored like evaluation scores them;
everything else is refused with an error that names no server path, and nothing is written outside the server's
work folder. One server for the module (each start costs seconds).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from local_stack.process import free_port

from .conftest import NAME, PROMPTS, evaluate_studies, tree, zip_folder

pytestmark = pytest.mark.integration
MAX_UPLOAD = 8 * 2**20


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory, allowed_root: Path) -> Path:
    """A folder outside the allowed root holding a copy of the study, reachable from inside only by a link."""
    folder = tmp_path_factory.mktemp("outside") / "secret_study"
    shutil.copytree(allowed_root / "study", folder)
    (allowed_root / "escape").symlink_to(folder, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def server(
    env: dict[str, str], champion: str, allowed_root: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """`mlflow models serve -m models:/hlip-demo@champion` with the allowed root, a work folder and its limits."""
    work = tmp_path_factory.mktemp("server")
    (work / "tmp").mkdir()
    port = free_port()
    server_env = {
        **os.environ, **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(work / "tmp"),  # MLflow's model download and our per-request folders go here
        "HLIP_SERVE_ROOTS": str(allowed_root),
        "HLIP_SERVE_WORK_DIR": str(work / "tmp"),
        "HLIP_SERVE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    }  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=server_env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"scoring server did not start:\n{(work / 'server.log').read_text()[-4000:]}")
            time.sleep(1)
        yield {"url": url, "work": work, "before": {"allowed": tree(allowed_root), "outside": tree(outside.parent)}}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group this fixture started (mlflow -> uvicorn)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def post(server: dict[str, Any], records: list[dict[str, Any]]) -> tuple[int, str]:
    """POST `records` to /invocations; returns the status and the raw body."""
    body = json.dumps({"dataframe_records": records}).encode()
    request = urllib.request.Request(f"{server['url']}/invocations", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def rows(text: str) -> list[dict[str, Any]]:
    assert "NaN" not in text
    assert "Infinity" not in text
    return list(json.loads(text)["predictions"])


def test_zip_upload_scores_like_the_allowed_folder_and_evaluation(
    server: dict[str, Any], allowed_root: Path, exported_model: Path, ingest_config: Any, tmp_path: Path
) -> None:
    archive = base64.b64encode(zip_folder(allowed_root / "study")).decode()
    status, text = post(server, [{"study_archive": archive}, {"study_path": str(allowed_root / "study")}])
    assert status == 200, text[-2000:]
    uploaded, by_path = rows(text)
    assert uploaded["error"] == ""
    assert by_path["error"] == ""
    assert uploaded["n_scans"] == by_path["n_scans"] >= 2
    assert json.loads(uploaded["quarantine"]) == json.loads(by_path["quarantine"])
    np.testing.assert_allclose(uploaded["embedding"], by_path["embedding"], atol=1e-6)
    ((embedding, scores),) = evaluate_studies(allowed_root / "study", exported_model, ingest_config, tmp_path).values()
    np.testing.assert_allclose(uploaded["embedding"], embedding, atol=1e-5)
    np.testing.assert_allclose([uploaded[f] for f in PROMPTS["findings"]], scores, atol=1e-5)
    np.testing.assert_allclose([by_path[f] for f in PROMPTS["findings"]], scores, atol=1e-5)


def _tar_with_traversal() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("../../../../tmp/hlip-planted.dcm")
        info.size = 4
        t.addfile(info, io.BytesIO(b"DICM"))
    return buf.getvalue()


def _zip_of_text() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("report.txt", "not a DICOM file")
        z.writestr("image.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    return buf.getvalue()


def test_refused_requests_name_no_server_path_and_write_nothing(
    server: dict[str, Any], allowed_root: Path, outside: Path
) -> None:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    cases = {
        "outside": ({"study_path": "/etc"}, "path_not_allowed"),
        "traversal": ({"study_path": f"{allowed_root}/study/../../../../etc"}, "path_not_allowed"),
        "symlink escape": ({"study_path": str(allowed_root / "escape")}, "path_not_allowed"),
        "missing": ({"study_path": str(allowed_root / "no_such_study")}, "path_not_allowed"),
        "s3 not allowed": ({"study_path": "s3://any-bucket/studies/1"}, "path_not_allowed"),
        "oversized upload": ({"study_archive": b64(os.urandom(MAX_UPLOAD + 1))}, "upload_too_large"),
        "non-DICOM archive": ({"study_archive": b64(_zip_of_text())}, "not_dicom"),
        "unsafe archive": ({"study_archive": b64(_tar_with_traversal())}, "unsafe_archive"),
        "not an archive": ({"study_archive": b64(b"just some bytes")}, "bad_archive"),
    }
    status, text = post(server, [record for record, _ in cases.values()])
    assert status == 200, text[-2000:]
    answers = rows(text)
    # a list column cannot be missing in some rows of one request (MLflow's schema check): scan paths go alone
    cases["scan outside"] = ({"scan_paths": ["/etc/passwd"]}, "path_not_allowed")
    status, scan_text = post(server, [cases["scan outside"][0]])
    assert status == 200, scan_text[-2000:]
    answers += rows(scan_text)
    text += scan_text
    for (case, (_, code)), row in zip(cases.items(), answers, strict=True):
        assert row["error"].startswith(code + ":"), (case, row["error"])
        assert all(row[f] is None for f in PROMPTS["findings"]), case  # null, not NaN
        assert (row["embedding"], row["n_scans"]) == ([], 0), case
    for secret in ("/tmp/", "/etc", str(allowed_root), str(outside), str(server["work"]), sys.prefix):
        assert secret not in text, secret
    # nothing written under the allowed root or outside it, nothing planted by the archive, work folders removed
    assert tree(allowed_root) == server["before"]["allowed"]
    assert tree(outside.parent) == server["before"]["outside"]
    assert not Path("/tmp/hlip-planted.dcm").exists()
    assert not list((server["work"] / "tmp").glob("hlip-serve-*"))
