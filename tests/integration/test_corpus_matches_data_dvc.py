"""The committed data.dvc describes exactly what the generator writes: regeneration is byte-for-byte identical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hlip.tracking.runs import dvc_out_md5

REPO = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_regenerated_demo_corpus_matches_data_dvc(tmp_path: Path) -> None:
    from demo_corpus import DemoCorpusConfig, generate_corpus

    committed = dvc_out_md5(REPO / "data.dvc")
    assert committed, "data.dvc records no md5"
    generate_corpus(tmp_path / "data", DemoCorpusConfig(), workers=2)
    # Hash it exactly as DVC does, in a scratch DVC repository (hardlinks: no copy of the corpus).
    for args in (["init", "--no-scm", "-q"], ["config", "cache.type", "hardlink,copy"], ["add", "-q", "data"]):
        subprocess.run([DVC, *args], cwd=tmp_path, check=True, capture_output=True)
    assert dvc_out_md5(tmp_path / "data.dvc") == committed
