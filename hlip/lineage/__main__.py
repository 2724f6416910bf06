"""``python -m hlip.lineage [dvc.yaml]``: print each stage's code dependencies as `dvc.yaml` should list them.

The test of `dvc.yaml` fails, naming the file, when a stage misses part of its closure or lists code it does
not run; this prints the lists to paste (data and output dependencies are the stage author's, not listed here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from hlip.lineage.closure import ROOT, dep_paths, entry_module, import_closure


def main(argv: list[str]) -> int:
    """Print ``<stage>:`` and its code deps (YAML list items) for every stage of the given `dvc.yaml`."""
    parser = argparse.ArgumentParser(prog="python -m hlip.lineage", description=__doc__.splitlines()[0])
    parser.add_argument("dvc_yaml", nargs="?", type=Path, default=ROOT / "dvc.yaml", help="default: the repository's")
    dvc_yaml: Path = parser.parse_args(argv).dvc_yaml
    if not dvc_yaml.is_file():
        sys.stderr.write(f"error: {dvc_yaml} is not a file\n")
        return 2
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    for name, spec in stages.items():
        root = dvc_yaml.resolve().parent
        closure = import_closure(entry_module(str(spec["cmd"])), root)
        sys.stdout.write(f"{name}:\n" + "".join(f"  - {p.as_posix()}\n" for p in dep_paths(closure, root)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
