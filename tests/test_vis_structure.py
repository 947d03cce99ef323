"""vis/ as a reader wants it: techniques import shared modules and tinycnn, not each
other; targets are selected in one place; per-model defaults live in one table; each
technique's tests are in tests/test_vis_<technique>.py."""
import ast
import re
import sys
from pathlib import Path

import pytest

from tinycnn.models import cifar10_net, squeezenet1_1
from vis import cli

VIS = Path(__file__).resolve().parents[1] / "vis"
TESTS = Path(__file__).resolve().parent
# grabcut: a segmentation building block (saliency seeds it), not a visualisation technique
SHARED = {"objectives", "_optimize", "_memory", "render", "cli", "gallery", "grabcut", "__init__"}
TECHNIQUES = sorted(p.stem for p in VIS.glob("*.py") if p.stem not in SHARED)
# the allowed cross-imports: a facet is a class visualisation from a cluster mean; fast style
# is trained on style transfer's loss and compared with its result; saliency's segmentation
# seeds are its map times Grad-CAM's
ALLOWED = {("multifaceted", "class_visualization"), ("fast_style", "style_transfer"),
           ("fast_style_train", "fast_style"), ("saliency", "attribution")}
# grabcut is shared (saliency imports it) but is an algorithm of its own, with its own tests
TESTED = sorted(set(TECHNIQUES) | {"grabcut"})
# test files of no one module: techniques together on the real SqueezeNet, host-device
# transfers under the strict CuPy stand-in, and this file
ACROSS = {"real", "device", "structure"}


def vis_imports(name):
    """The vis modules that vis/<name>.py imports."""
    found = set()
    for node in ast.walk(ast.parse((VIS / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "vis":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vis."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vis.")}
    return found


@pytest.mark.parametrize("name", TECHNIQUES)
def test_techniques_do_not_import_each_other(name):
    others = {m for m in vis_imports(name) - SHARED if (name, m) not in ALLOWED}
    assert others == set(), f"vis/{name}.py imports technique module(s) {others}"


def test_the_structure_test_sees_a_cross_import(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("from vis.saliency import saliency_map\n"
                                   "from vis import render, fooling\n")
    monkeypatch.setattr(sys.modules[__name__], "VIS", tmp_path)
    assert vis_imports("a") == {"saliency", "render", "fooling"}


@pytest.mark.parametrize("name", TECHNIQUES)
def test_targets_are_selected_only_in_objectives(name):
    # an upstream gradient built by hand: zeros shaped like an output, then a one written in
    source = (VIS / f"{name}.py").read_text()
    assert not re.search(r"zeros\((out|scores|a)\.shape", source), \
        f"vis/{name}.py builds its own dout"


@pytest.mark.parametrize("name", TECHNIQUES)
def test_no_per_model_branches_in_techniques(name):
    assert "args.model ==" not in (VIS / f"{name}.py").read_text(), \
        "per-model defaults belong in cli.MODEL_DEFAULTS"


@pytest.mark.parametrize("name", TESTED)
def test_each_technique_has_its_own_test_file(name):
    # a reader looking for vis/<name>.py's tests finds them in one file named after it
    assert (TESTS / f"test_vis_{name}.py").is_file(), \
        f"vis/{name}.py has no tests/test_vis_{name}.py"


def test_each_vis_test_file_is_named_after_a_vis_module():
    modules = {p.stem.lstrip("_") for p in VIS.glob("*.py")}       # _optimize: test_vis_optimize
    named = {p.stem[len("test_vis_"):] for p in TESTS.glob("test_vis_*.py")}
    assert named - modules - ACROSS == set(), "test files that name no vis module"


@pytest.mark.parametrize("model,build", [("squeezenet", squeezenet1_1), ("cifar10", cifar10_net)])
def test_every_default_layer_exists_in_its_model(model, build):
    row = cli.MODEL_DEFAULTS[model]
    assert set(row) == set(cli.MODEL_DEFAULTS["squeezenet"])
    net = build(weights=False)
    for key in (k for k in row if k.endswith("_layer")):
        net.layer(row[key])
    for name in row["classes"] or ():
        assert any(name in c.lower() for c in net.meta["classes"]), name


def test_every_main_is_a_thin_command_line():
    """main() parses, calls functions a reader can call, and renders: at most 35 lines, in every
    command of tinycnn/, vis/ and bench/."""
    root = Path(__file__).resolve().parents[1]
    long = []
    for path in sorted(p for d in ("tinycnn", "vis", "bench") for p in (root / d).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                if node.end_lineno - node.lineno + 1 > 35:
                    long.append(f"{path.relative_to(root)}: {node.end_lineno - node.lineno + 1}")
    assert long == []
