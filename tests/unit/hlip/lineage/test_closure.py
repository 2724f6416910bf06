"""The import closure read from source: what counts as run, what does not, and the digest and dep list built on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hlip.lineage.closure import covered, dep_paths, entry_module, import_closure


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repository: package `app` (entry `app.main`) and package `lib`, plus third-party imports."""
    _write(tmp_path, {
        "app/__init__.py": "",
        "app/main.py": """
            import json
            from typing import TYPE_CHECKING
            from lib import top
            if TYPE_CHECKING:
                from lib import typing_only

            def run():
                import numpy
                from lib.lazy import thing
                return thing
            """,
        "app/unused.py": "",
        "lib/__init__.py": "",
        "lib/top.py": "from . import helper\nfrom .sub.deep import x\n",
        "lib/helper.py": "REGISTRY = {'a': 'lib.plugin:Plugin'}\n",
        "lib/plugin.py": "from pathlib import Path\nDATA = Path(__file__).parent / 'data'\nSELF = Path(__file__)\n",
        "lib/data/one.yaml": "a: 1\n",
        "lib/data/nested/two.json": "{}\n",
        "lib/lazy.py": "thing = 1\n",
        "lib/typing_only.py": "",
        "lib/sub/__init__.py": "",
        "lib/sub/deep.py": "x = 1\n",
        "lib/sub/other.py": "",
    })  # fmt: skip
    return tmp_path


def test_closure_follows_every_import_that_runs(repo: Path) -> None:
    closure = import_closure("app.main", repo)
    assert set(closure.modules) == {
        "app", "app.main", "lib", "lib.top", "lib.helper", "lib.plugin", "lib.lazy", "lib.sub", "lib.sub.deep",
    }  # fmt: skip
    # TYPE_CHECKING imports never run; modules nobody imports are not in it; third-party modules are not files here
    assert "lib.typing_only" not in closure.modules
    assert "app.unused" not in closure.modules


def test_package_data_read_through_dunder_file_is_in_the_closure(repo: Path) -> None:
    closure = import_closure("app.main", repo)
    assert closure.data == (Path("lib/data"),)
    assert {Path("lib/data/one.yaml"), Path("lib/data/nested/two.json")} <= set(closure.files)
    assert "lib.plugin" in closure.chain(Path("lib/data/one.yaml"))
    assert closure.chain(Path("lib/sub/deep.py")) == "app.main -> lib.top -> lib.sub.deep"


def test_the_repository_root_is_not_package_data(repo: Path) -> None:
    _write(repo, {"lib/lazy.py": "from pathlib import Path\nROOT = Path(__file__).resolve().parents[1]\n"})
    assert all(d.parts and d.parts[0] != "." for d in import_closure("app.main", repo).data)
    assert import_closure("app.main", repo).data == (Path("lib/data"),)


def test_digest_changes_with_the_closure_only(repo: Path) -> None:
    before = import_closure("app.main", repo).digest(repo)
    (repo / "app/unused.py").write_text("changed = True\n")
    (repo / "lib/sub/other.py").write_text("changed = True\n")
    assert import_closure("app.main", repo).digest(repo) == before
    (repo / "lib/data/nested/two.json").write_text('{"changed": true}\n')
    assert import_closure("app.main", repo).digest(repo) != before


def test_a_new_function_local_import_extends_the_closure(repo: Path) -> None:
    (repo / "lib/lazy.py").write_text("def f():\n    from lib.sub import other\n")
    assert "lib.sub.other" in import_closure("app.main", repo).modules


def test_dep_paths_use_a_folder_only_when_all_of_it_runs(repo: Path) -> None:
    deps = dep_paths(import_closure("app.main", repo), repo)
    assert Path("lib/data") in deps
    assert Path("lib/sub") not in deps  # lib/sub/other.py is not run
    assert Path("lib/sub/deep.py") in deps
    assert Path("app") not in deps  # app/unused.py is not run
    assert covered(Path("lib/data/nested/two.json"), [str(d) for d in deps])
    assert not covered(Path("lib/sub/other.py"), [str(d) for d in deps])


def test_entry_module_reads_python_dash_m() -> None:
    assert entry_module("python -m flows.ingest --params p.yaml") == "flows.ingest"
    with pytest.raises(ValueError, match="does not run a module"):
        entry_module("bash scripts/ingest.sh")


def test_an_entry_that_is_not_first_party_is_refused(repo: Path) -> None:
    with pytest.raises(ModuleNotFoundError, match="json"):
        import_closure("json", repo)
