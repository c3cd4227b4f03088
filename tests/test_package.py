"""vizlib's public surface: lazy submodules, flat names, and no Streamlit anywhere in it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vizlib

VIZLIB = Path(vizlib.__file__).parent


def test_flat_names_are_the_submodules_objects():
    assert vizlib.tsne is vizlib.embedding.tsne
    assert vizlib.attention_rollout is vizlib.attention.attention_rollout
    assert vizlib.conv_params is vizlib.conv.conv_params
    assert vizlib.load_model is vizlib.zoo.load_model
    with pytest.raises(AttributeError):
        vizlib.no_such_thing  # noqa: B018


def test_every_public_name_exists():
    for module_name in vizlib._SUBMODULES:
        module = getattr(vizlib, module_name)
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"vizlib.{module_name}.__all__ names missing {name!r}"


def test_no_two_modules_export_the_same_name():
    """A flat name must mean one thing: vizlib.plots once exported two plot_coverage (the
    Playground's coverage map and the calibration page's curve), and the page got the other."""
    import collections
    import importlib
    import pkgutil

    for package, modules in (
        (vizlib, vizlib._SUBMODULES),
        (vizlib.plots, [m.name for m in pkgutil.iter_modules(vizlib.plots.__path__)]),
    ):
        owners = collections.defaultdict(dict)  # name -> {id of the object: module}
        for module_name in modules:
            if module_name.startswith("_") or module_name == "plots":
                continue
            module = importlib.import_module(f"{package.__name__}.{module_name}")
            for name in getattr(module, "__all__", ()):
                # the same object re-exported (zoo passes data's upload limit on) is one thing
                owners[name][id(getattr(module, name))] = module_name
        shared = {name: list(where.values()) for name, where in owners.items() if len(where) > 1}
        assert not shared, f"{package.__name__} exports these names twice: {shared}"


def test_vizlib_never_imports_streamlit():
    for path in VIZLIB.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "streamlit" for n in names), path
    code = (
        "import sys, vizlib; vizlib.conv; vizlib.zoo; vizlib.attention; vizlib.embedding; "
        "vizlib.attribution; vizlib.plots; print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_download_button_leaves_the_page_alone():
    """A download button's default click reruns the page. With deferred data (a callable) the
    rerun races the file's request: the rerun can drop the callable first and nothing downloads
    (a CI run of the Attributions page's NPZ waited 60 s for a download that never came). A
    rerun also recomputes the page for nothing. Every button in the pages passes
    on_click="ignore"."""
    root = VIZLIB.parent
    buttons = 0
    for path in sorted([*root.glob("app_pages/*.py"), *root.glob("ui/**/*.py"), root / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "download_button":
                buttons += 1
                on_click = {k.arg: k.value for k in node.keywords}.get("on_click")
                assert isinstance(on_click, ast.Constant) and on_click.value == "ignore", (
                    f"{path.relative_to(root)}:{node.lineno}"
                )
    assert buttons >= 30
