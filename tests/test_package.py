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
