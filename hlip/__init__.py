"""HLIP pipeline: hierarchical language-image pre-training on raw, uncurated 3D CT/MRI studies.

The library (`hlip`) is plain PyTorch/pydicom/numpy and imports no orchestration; the thin Prefect flows live
in the top-level `flows` package.
"""

__version__ = "0.1.0"
