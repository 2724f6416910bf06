"""The import closure of a module: every first-party source file it runs and every package data file it reads.

Read from the source with `ast`, never by importing: top-level and function-local imports alike (heavy modules
are imported lazily inside functions, and those functions still run), relative imports, modules named in strings
(``"hlip.evaluation.benchmarks.demo:DemoBenchmark"`` registries, ``python -m`` targets), and package data reached
through ``Path(__file__)`` expressions (``Path(__file__).parent / "prompts"`` means the whole folder). Imports under
``if TYPE_CHECKING:`` never run and are left out. A module is first-party when it resolves to a file under the
repository root inside a top-level package (a folder with ``__init__.py``); everything else (stdlib, third-party)
is pinned by the lock file, not here.

    >>> closure = import_closure("hlip.data.ingest")          # doctest: +SKIP
    >>> [str(p) for p in closure.files][:2]                    # doctest: +SKIP
    ['hlip/__init__.py', 'hlip/config.py']
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import re
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A dotted module path, optionally followed by ":attribute" (registry entries); at least one dot, so plain words
# ("hlip", "demo") are never read as modules.
_MODULE_STRING = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?::[A-Za-z_]\w*)?$")
_SKIPPED_PARTS = {"__pycache__"}


@dataclasses.dataclass(frozen=True)
class Closure:
    """What one entry module runs and reads.

    Attributes:
        entry: The dotted name of the entry module.
        modules: Dotted names of every first-party module in the closure (packages' ``__init__`` included), sorted.
        data: Package data paths read through ``Path(__file__)`` (files or folders), relative to the root, sorted.
        files: Every file of the closure (module sources and the files under each data path), relative, sorted.
        via: For each module and data path, the module that brought it in (for error messages).
    """

    entry: str
    modules: tuple[str, ...]
    data: tuple[Path, ...]
    files: tuple[Path, ...]
    via: dict[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def chain(self, file: Path) -> str:
        """How the entry reaches `file`: ``flows.x -> hlip.a -> hlip.b`` (its module, or the module reading it)."""
        parts = file.with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        key = (
            name
            if name in self.modules
            else next((self.via[str(d)] for d in self.data if d == file or d in file.parents), self.entry)
        )
        names = [key]
        while names[-1] in self.via and len(names) < 64:
            names.append(self.via[names[-1]])
        return " -> ".join(reversed(names))

    def digest(self, root: Path = ROOT) -> str:
        """A SHA-256 over every file's relative path and bytes: changes exactly when the closure's content does."""
        sha = hashlib.sha256()
        for rel in self.files:
            sha.update(rel.as_posix().encode() + b"\x00" + (root / rel).read_bytes() + b"\x00")
        return sha.hexdigest()


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of first-party module `name` (``a/b.py`` or ``a/b/__init__.py``), or None."""
    parts = name.split(".")
    if not (root / parts[0] / "__init__.py").is_file():
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def entry_module(cmd: str) -> str:
    """The module a stage command runs: ``python -m flows.ingest --x`` -> ``flows.ingest``.

    Raises:
        ValueError: The command does not run a module with ``-m``.
    """
    words = shlex.split(cmd)
    if "-m" not in words or words.index("-m") + 1 >= len(words):
        raise ValueError(f"stage command {cmd!r} does not run a module (`python -m <module>`)")
    return words[words.index("-m") + 1]


def import_closure(entry: str, root: Path = ROOT) -> Closure:
    """Every first-party module `entry` imports, transitively, and the package data they read.

    Raises:
        ModuleNotFoundError: `entry` is not a first-party module under `root`.
    """
    if module_file(entry, root) is None:
        raise ModuleNotFoundError(f"{entry!r} is not a first-party module under {root}")
    seen: set[str] = set()
    data: set[Path] = set()
    via: dict[str, str] = {}
    todo = [(entry, "")]
    while todo:
        name, parent = todo.pop(0)  # breadth first: `via` records a shortest chain
        for module in (*_parents(name), name):
            if module in seen or (path := module_file(module, root)) is None:
                continue
            seen.add(module)
            if parent:
                via[module] = parent
            refs, reads = _scan(path, module)
            todo.extend((ref, module) for ref in sorted(refs))
            for p in reads:
                if _is_package_data(p, root) and p.relative_to(root) not in data:
                    data.add(p.relative_to(root))
                    via.setdefault(str(p.relative_to(root)), module)
    sources = {_rel(module_file(m, root), root) for m in seen}
    files = sources | {f for d in data for f in _files_under(root / d, root)}
    return Closure(entry, tuple(sorted(seen)), tuple(sorted(data)), tuple(sorted(files)), via)


@functools.cache
def closure_digest(entry: str) -> str:
    """The digest of `entry`'s closure under the installed root (cached: the source does not change in-process)."""
    return import_closure(entry).digest()


def covered(file: Path, deps: Iterable[str | Path]) -> bool:
    """Whether `file` is a dependency in `deps`, itself or under a folder dependency (all paths relative)."""
    return any(file == Path(d) or Path(d) in file.parents for d in deps)


def dep_paths(closure: Closure, root: Path = ROOT) -> list[Path]:
    """The tightest honest dependency list for `closure`: a folder where every file under it is in the closure,
    else the files one by one (what `dvc.yaml` should list as the stage's code)."""
    files = set(closure.files)
    full: set[Path] = set()
    for folder in sorted({p for f in files for p in f.parents if p != Path(".")}, key=lambda p: len(p.parts)):
        if not any(f in full for f in folder.parents) and set(_files_under(root / folder, root)) <= files:
            full.add(folder)
    return sorted(full | {f for f in files if not any(d in f.parents for d in full)})


def _is_package_data(path: Path, root: Path) -> bool:
    """A path inside a first-party package (the root itself, e.g. this module's `ROOT`, is not package data)."""
    if not (path.exists() and path.is_relative_to(root)):
        return False
    parts = path.relative_to(root).parts
    return bool(parts) and (root / parts[0] / "__init__.py").is_file()


def _rel(path: Path | None, root: Path) -> Path:
    assert path is not None  # every module in `seen` resolved to a file
    return path.relative_to(root)


def _parents(name: str) -> Iterator[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        yield ".".join(parts[:i])


def _files_under(path: Path, root: Path) -> Iterator[Path]:
    if path.is_file():
        yield path.relative_to(root)
        return
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(root)
        if f.is_file() and not _SKIPPED_PARTS & set(rel.parts) and f.suffix != ".pyc":
            yield rel


def _scan(path: Path, module: str) -> tuple[frozenset[str], frozenset[Path]]:
    """The modules `path` (module `module`) refers to, and the paths it builds from ``Path(__file__)``."""
    stat = path.stat()
    return _scan_source(path, module, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _scan_source(path: Path, module: str, mtime_ns: int, size: int) -> tuple[frozenset[str], frozenset[Path]]:
    """`_scan`, cached per file version (the key holds its mtime and size, so an edited file is read again)."""
    source = path.read_bytes()
    tree = ast.parse(source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    refs: set[str] = set()
    reads: set[Path] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            refs.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            refs.add(base)
            refs.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _MODULE_STRING.match(node.value)):
            refs.add(m.group(1))
    if b"__file__" in source:  # the only anchor `_path_value` follows: skip the second walk when it is absent
        _collect_paths(tree, path, reads)
    return frozenset(refs), frozenset(reads)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (imports there never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")[: len(package.split(".")) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _collect_paths(node: ast.AST, file: Path, out: set[Path]) -> None:
    """The outermost expressions that evaluate to a path from ``Path(__file__)``; their parts are not reads."""
    value = _path_value(node, file)
    if value is not None:
        if value != file.resolve():
            out.add(value)
        return
    for child in ast.iter_child_nodes(node):
        _collect_paths(child, file, out)


def _path_value(node: ast.AST, file: Path) -> Path | None:
    """Evaluate ``Path(__file__)``, ``.resolve()``, ``.parent``, ``.parents[n]`` and ``/ "name"``; else None."""
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if _is_path_ctor(func) and len(node.args) == 1 and _is_dunder_file(node.args[0]):
            return file.resolve()
        if isinstance(func, ast.Attribute) and func.attr in {"resolve", "absolute"} and not node.args:
            return _path_value(func.value, file)
        return None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _path_value(node.value, file)
        return inner.parent if inner is not None else None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        inner = _path_value(node.value.value, file)
        index = node.slice
        if inner is not None and isinstance(index, ast.Constant) and isinstance(index.value, int):
            return inner.parents[index.value]
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        inner = _path_value(node.left, file)
        right = node.right
        if inner is not None and isinstance(right, ast.Constant) and isinstance(right.value, str):
            return inner / right.value
    return None


def _is_path_ctor(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "Path") or (
        isinstance(func, ast.Attribute) and func.attr == "Path"
    )


def _is_dunder_file(arg: ast.expr) -> bool:
    return isinstance(arg, ast.Name) and arg.id == "__file__"
