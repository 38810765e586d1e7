"""The house's floors, checked on every run: edges → services → models → wrappers → base, never upward,
and no import cycle between modules. A small AST walk over the project's own modules (no services)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("strix", "archives", "backups")

# Highest floor first; a module belongs to the first floor whose prefixes match its name.
FLOORS = [
    ("edges", (
        "archives.admin", "archives.admin_views", "archives.admin_restore", "archives.admin_operations",
        "archives.admin_search",
        "archives.tasks", "archives.management",
        "archives.templatetags",
        "backups.management", "backups.setup_cli", "backups.command_base",
        "strix.fractals.admin", "strix.fractals.management", "strix.checks", "strix.urls", "strix.wsgi",
        "strix.celery", "strix.fractals.apps", "strix.health_views", "strix.middleware",
    )),
    # strix/__init__.py loads the Celery app, as Celery's Django example does: an edge, imported by no one.
    ("edges", ("strix",)),
    ("services", ("archives.services", "backups.services", "strix.fractals.seeding", "strix.envfile", "strix.health")),
    ("models", ("archives.models", "strix.fractals.models", "strix.fractals.lookup", "archives.apps", "backups.apps")),
    ("wrappers", (
        "strix.logstore", "strix.storage", "strix.crypto", "strix.locks", "backups.pgtools", "backups.compose",
    )),
    ("base", (
        "strix.settings", "strix.envconfig", "strix.errors", "strix.failpoints", "strix.progress", "strix.streams",
        "strix.bytesearch",
        "strix.request_ip", "strix.debug_filter",
        "strix.fractals.demo", "backups.naming", "backups.generations",
    )),
]  # fmt: skip
RANK = {"edges": 5, "services": 4, "models": 3, "wrappers": 2, "base": 1}

# Imports inside functions hide cycles; these are needed before django.setup() or by Django's own
# conventions, and are the only ones allowed.
DOCUMENTED_LATE_IMPORTS = {
    ("strix.fractals.apps", "strix.checks"),  # AppConfig.ready() registers the system checks
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def floor_of(module: str) -> str:
    for name, prefixes in FLOORS:
        if module == "strix" and prefixes != ("strix",):
            continue
        if any(module == p or (p != "strix" and module.startswith(p + ".")) for p in prefixes):
            return name
    if module in PACKAGES or module in ("strix.fractals", "strix.crypto"):
        return "base"  # package markers
    raise AssertionError(f"{module} has no floor: add it to FLOORS in tests/test_architecture.py")


def _resolve(name: str) -> str | None:
    """The project module an import names (``a.b.c`` may be module ``a.b`` with attribute ``c``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level imports, imports inside functions) of project modules."""
    tree = ast.parse(MODULES[module].read_text())
    top, late = set(), set()

    def visit(node, nested: bool):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                # ``from pkg import mod`` imports the module; ``from mod import name`` the module itself.
                names = [
                    f"{child.module}.{alias.name}" if f"{child.module}.{alias.name}" in MODULES else child.module
                    for alias in child.names
                ]
            for name in names:
                target = _resolve(name)
                if target and target != module and not module.startswith(target + "."):
                    (late if inner else top).add(target)
            visit(child, inner)

    visit(tree, False)
    return top, late


def test_every_module_has_a_floor():
    for module in MODULES:
        floor_of(module)


def test_no_module_imports_from_a_higher_floor():
    upward = []
    for module in MODULES:
        top, late = _imports(module)
        for target in top | late:
            if RANK[floor_of(target)] > RANK[floor_of(module)]:
                upward.append(f"{module} ({floor_of(module)}) imports {target} ({floor_of(target)})")
    assert upward == []


def test_no_import_inside_a_function_except_the_documented_ones():
    late_imports = {(module, target) for module in MODULES for target in _imports(module)[1]}
    assert late_imports - DOCUMENTED_LATE_IMPORTS == set()


def test_no_import_cycle_between_modules():
    graph = {module: _imports(module)[0] for module in MODULES}
    cycles, state = [], {}

    def walk(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            # A package's __init__ re-exporting its own submodules is not a cycle of logic.
            if target.startswith(module + "."):
                continue
            if state.get(target) == "open":
                cycles.append(" → ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                walk(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []
