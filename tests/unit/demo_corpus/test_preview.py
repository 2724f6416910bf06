from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from demo_corpus import SERIES_KINDS, CorpusSummary, render_preview


def test_preview_writes_one_legible_png_per_series_kind(
    tmp_path: Path, tiny_corpus: tuple[Path, CorpusSummary]
) -> None:
    root, _ = tiny_corpus
    paths = render_preview(root, tmp_path / "preview")
    names = {p.name for p in paths}
    assert {f"series_{kind}.png" for kind in SERIES_KINDS} <= names
    sheets = [p for p in paths if p.name.startswith("study_")]
    assert sheets, "a contact sheet of a study with a finding"
    for path in paths:
        image = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert image.shape[0] > 100
        assert image.shape[1] > 100
        assert image.std() > 10  # not blank
