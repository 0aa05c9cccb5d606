"""The package's structure, read from the source (ast): imports run downward only, no two files import each
other (directly or round a cycle), and detrt's own modules are imported at the top of files.

    ops (the two special ops; plugins/ beside them) at the bottom, beside the base modules
    models, data, eval, manifest, assets   above ops (the manifest reads data's Vocabulary)
    training, compile                      above those
    runtime                                on ops, data and the manifest only (never torch)
    bench, demo, doctor, cli               on top
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "detrt"

BASE = {"errors", "atomic", "progress", "box_ops", "optional"}  # small modules every layer may use
TOP = {"bench", "demo", "doctor", "cli"}
LOWER = {"ops", "models", "data", "eval", "manifest", "assets", "training", "compile", "runtime", *BASE}
ALLOWED = {  # part of detrt (a subpackage or a top-level module) -> the parts it may import (its own part always)
    **{base: BASE for base in BASE},
    "ops": BASE,
    "manifest": BASE | {"data"},
    "assets": BASE,
    "data": BASE | {"ops"},
    "models": BASE | {"ops", "data"},
    "eval": BASE | {"data"},
    "training": BASE | {"ops", "models", "data", "eval", "manifest", "assets"},
    "compile": BASE | {"ops", "models", "data", "eval", "manifest", "assets"},
    "runtime": BASE | {"ops", "data", "manifest"},
    "bench": LOWER,
    "demo": LOWER | {"bench"},
    "doctor": LOWER | {"bench"},
    "cli": LOWER | TOP,
}
# What `pip install detrt` brings (pyproject.toml's dependencies, as imported): a module of detrt that needs
# anything else when imported (torch, onnx, tensorrt, ...) may be imported inside the functions that use it.
BASE_INSTALL = {"numpy", "cv2", "onnxruntime", "tqdm"}
# Needs onnxruntime-extensions through an import the ast does not show (it is imported with torch hidden).
NEEDS_EXTRA = {"detrt.ops.ort"}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


MODULES = dict(_modules())
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _guards_import(node):
    """A `try` whose `except ImportError` lets its imports fail."""
    return isinstance(node, ast.Try) and any(
        h.type is not None and {"ImportError", "ModuleNotFoundError"} & {n.id for n in ast.walk(h.type)
                                                                        if isinstance(n, ast.Name)}
        for h in node.handlers)


def _module_level(tree, guarded=True):
    """The statements that run when the module is imported: the body, into if/try/with blocks, not into
    function or class bodies; guarded=False leaves out the bodies of `try: import x except ImportError`."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not guarded and _guards_import(node):
            todo.extend(node.handlers + node.orelse + node.finalbody)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt) or hasattr(n, "body"))


def _names(node):
    """`a.b` for `import a.b`, `a.b.c` for `from a.b import c` (c a module or not)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        assert not node.level, f"line {node.lineno}: a relative import (detrt uses absolute imports only)"
        return [f"{node.module}.{a.name}" for a in node.names]
    return []


def _resolve(name):
    """The module of detrt an imported name is in: `detrt.ops.cpu.available` -> detrt.ops.cpu."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def _imports(tree):
    """(module of detrt, line, whether it runs when the module is imported) for each import of detrt's code."""
    top = {id(n) for n in _module_level(tree)}
    for node in ast.walk(tree):
        for name in dict.fromkeys(_resolve(n) for n in _names(node) if n.startswith("detrt.")):
            yield name, node.lineno, id(node) in top


EDGES = [(a, b, line, at_top) for a, tree in TREES.items() for b, line, at_top in _imports(tree)]


def _part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "detrt"


def _where(module, line):
    return f"{MODULES[module].relative_to(ROOT.parent)}:{line}"


def _needs_extra():
    """detrt's modules that need a package outside the base install when imported (not one they can do
    without), directly or through the modules of detrt they import at the top."""
    needs = set(NEEDS_EXTRA)
    for name, tree in TREES.items():
        tops = {n.split(".")[0] for node in _module_level(tree, guarded=False) for n in _names(node)}
        if tops - BASE_INSTALL - {"detrt", "__future__"} - sys.stdlib_module_names:
            needs.add(name)
    while True:
        more = {a for a, b, _, at_top in EDGES if at_top and b in needs} - needs
        if not more:
            return needs
        needs |= more


def test_the_scan_sees_the_imports():
    """The checks below are only as good as the scan: it finds top-level and lazy imports, and which modules
    need an extra."""
    assert ("detrt.runtime.pipeline", "detrt.runtime.backend") in {(a, b) for a, b, _, top in EDGES if top}
    assert ("detrt.cli", "detrt.training.loop") in {(a, b) for a, b, _, top in EDGES if not top}
    needs = _needs_extra()
    assert {"detrt.models.dhdetr", "detrt.compile.export", "detrt.ops.ort"} <= needs
    assert not {"detrt.runtime.pipeline", "detrt.cli", "detrt.eval.assignment"} & needs  # scipy: optional there


def test_imports_run_downward():
    parts = {_part(m) for m in MODULES} - {"detrt"}
    assert parts <= set(ALLOWED), f"parts of detrt not placed in a layer: {sorted(parts - set(ALLOWED))}"
    wrong = [f"{_where(a, line)} imports {b}" for a, b, line, _ in EDGES
             if _part(b) not in (_part(a), "detrt") and _part(b) not in ALLOWED[_part(a)]]
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_own_modules_imported_at_the_top_unless_they_need_an_extra():
    needs = _needs_extra()
    lazy = [f"{_where(a, line)} imports {b} inside a function" for a, b, line, top in EDGES
            if not top and b not in needs]
    assert not lazy, "\n".join(lazy)


def test_no_import_cycles_between_files():
    graph = {}
    for a, b, _, _ in EDGES:
        if b != a and not a.startswith(b + "."):  # a module importing its own package's __init__ is no cycle
            graph.setdefault(a, set()).add(b)
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)
