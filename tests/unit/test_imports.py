"""The import graph of app/: no cycle among modules, and no import inside a function but
those listed here with their reason (an import there to dodge a cycle hides one)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# Every import of an app module made inside a function, with why it is not at the top.
PER_COMMAND = (
    "each command loads only what it uses: the CLI starts fast, and `flaskhub singleuser` "
    "loads none of the hub's database or web code"
)
ALLOWED_INSIDE: dict[str, tuple[frozenset[str], str]] = {
    "app": (
        frozenset(
            {"app.api", "app.auth", "app.config", "app.db", "app.errors", "app.groups"}
            | {"app.headers", "app.logins", "app.metrics", "app.oauth", "app.pages"}
            | {"app.roles", "app.servers", "app.shares", "app.tokens", "app.users"}
            | {"app.system_accounts"}
            | {"app.services.registry"}
        ),
        "create_app: gunicorn's arbiter imports app.* (its config) without Flask",
    ),
    "app.cli": (
        frozenset(
            {"app.migrations", "app.db", "app.users", "app.spawners", "app.spawners.base"}
            | {"app", "app.servers", "app.metrics", "app.roles", "app.services.registry"}
            | {"app.tokens", "app.auth.authenticators", "app.auth.passwords", "app.logins"}
            | {"app.system_accounts", "app.servers.rows"}
        ),
        PER_COMMAND,
    ),
    "app.supervisor": (
        frozenset({"app", "app.servers"}),
        "the arbiter imports Flask only at exit, to stop user servers (its docstring)",
    ),
    "app.gunicorn_conf": (
        frozenset({"app.background", "app.metrics"}),
        "post_worker_init: in the worker, after gevent patched it; the arbiter never loads them",
    ),
    "app.singleuser": (
        frozenset({"app.singleuser.serving"}),
        "main: after gevent's monkey.patch_all(), which must come before its imports",
    ),
}


def _modules(root: Path) -> dict[str, Path]:
    """Each module's dotted name (a package by its __init__.py) and its file."""
    found = {}
    for path in root.rglob("*.py"):
        if "versions" in path.relative_to(root).parts:
            continue  # Alembic's migrations: loaded by Alembic, one by one
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")


def _top_level(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported (not TYPE_CHECKING's)."""
    for stmt in tree.body:
        if _is_type_checking(stmt) or isinstance(stmt, ast.FunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node


def _needs(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> set[str]:
    """The modules whose body must have run for this import to succeed."""
    if isinstance(node, ast.Import):
        named = {a.name for a in node.names if a.name in modules}
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if modules[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        # `from P import q` needs the submodule P.q, else P's own body (a name in it).
        named = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        named &= modules.keys()
    # Importing P.q runs P's __init__ first, unless the importer is inside P (then P is
    # already being imported, and q needs only P's __path__).
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
    parents = {".".join(n.split(".")[:i]) for n in named for i in range(1, n.count(".") + 1)}
    return (named - {module}) | (parents & modules.keys()) - own


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once: several tests walk app/ (none changes a tree)."""
    return ast.parse(path.read_text())


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at root → the modules its top-level imports need."""
    modules = _modules(root)
    graph = {}
    for module, path in modules.items():
        tree = _tree(path)
        graph[module] = {n for node in _top_level(tree) for n in _needs(node, module, modules)}
    return graph


def inside_functions(root: Path) -> dict[str, set[str]]:
    """Each module → the package's modules it imports inside a function."""
    modules = _modules(root)
    found: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = _tree(path)
        top = set(_top_level(tree))
        typing_only = {
            n for s in tree.body if _is_type_checking(s) for n in ast.walk(s) if n is not s
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and node not in top | typing_only:
                if named := _needs_named(node, modules):
                    found.setdefault(module, set()).update(named)
    return found


def _needs_named(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The modules an import names (without the parent packages it also runs)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & modules.keys()
    base = node.module or ""
    named = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return named & modules.keys()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path around each cycle (Tarjan's strongly connected components, then a path)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(_path_around([v, *component], graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path_around(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """start → … → start, within the component."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    raise AssertionError("a strongly connected component has a cycle")


def test_no_import_cycle_among_app_modules() -> None:
    found = cycles(import_graph(APP))
    assert not found, "import cycles: " + "; ".join(" → ".join(c) for c in found)


def test_imports_inside_functions_are_the_listed_ones() -> None:
    allowed = {module: targets for module, (targets, _) in ALLOWED_INSIDE.items()}
    assert inside_functions(APP) == allowed


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # pages ↔ pages.shares as it was: a submodule reads a name of its package's body.
        (
            {
                "__init__.py": "",
                "p/__init__.py": "from pkg.p import s\nX = 1\n",
                "p/s.py": "from pkg.p import X\n",
            },
            [["pkg.p", "pkg.p.s", "pkg.p"]],
        ),
        # A package's __init__ importing its submodules, which import siblings: no cycle.
        (
            {
                "__init__.py": "",
                "p/__init__.py": "from pkg.p import a, b\n",
                "p/a.py": "from pkg.p.b import Y\n",
                "p/b.py": "Y = 1\n",
            },
            [],
        ),
        # oauth → servers.names runs servers/__init__, which imports oauth.
        (
            {
                "__init__.py": "",
                "oauth.py": "from pkg.s.names import f\n",
                "s/__init__.py": "from pkg.oauth import g\n",
                "s/names.py": "f = 1\n",
            },
            [["pkg.oauth", "pkg.s", "pkg.oauth"]],
        ),
        # Only for the type checker, or inside a function: not at import.
        (
            {
                "__init__.py": "",
                "a.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.b\n",
                "b.py": "def f():\n    import pkg.a\n",
            },
            [],
        ),
    ],
)
def test_cycles_are_found_as_python_would_meet_them(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert cycles(import_graph(_package(tmp_path, files))) == expected


def test_no_view_imports_the_database_module() -> None:
    """Views ask a domain service; only the domain opens the database."""
    graph = import_graph(APP)
    inside = inside_functions(APP)
    views = [m for m in graph if m.split(".")[:2] in (["app", "api"], ["app", "pages"])]
    assert [m for m in views if "app.db" in graph[m] | inside.get(m, set())] == []


def test_the_identity_is_domain_code() -> None:
    """app.identity reads no request, session or app: the web layer passes its grants in."""
    tree = ast.parse((APP / "identity.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.split(".")[0] in ("flask", "werkzeug", "app.db")}
    assert "app.db" not in imported and "app.auth" not in imported
