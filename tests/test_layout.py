"""The checkout's layout: cfg/, cuda_ops/, datasets/ and export/ sit at the top level and are linked
into the package (``yolo_lat/cuda_ops -> ../cuda_ops``, ...), so ``import yolo_lat.cuda_ops`` works
from a bare checkout, an editable install and a wheel, and pytest collects their docstring
examples once, under their ``yolo_lat.`` names."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINKED = ("cfg", "cuda_ops", "datasets", "export")

#: Imports the linked packages and prints where they came from and whether an import hook was installed.
_IMPORTS = r"""
import importlib.resources, json, sys
import yolo_lat, yolo_lat.cfg, yolo_lat.cuda_ops, yolo_lat.datasets, yolo_lat.export
hooks = [type(finder).__name__ + str(finder) for finder in sys.meta_path if "editable" in repr(finder).lower()]
print(json.dumps({
    "files": {name: sys.modules[name].__file__ for name in
              ("yolo_lat", "yolo_lat.cfg", "yolo_lat.cuda_ops", "yolo_lat.datasets", "yolo_lat.export")},
    "cfg": sorted(p.name for p in importlib.resources.files("yolo_lat.cfg").iterdir() if p.name.endswith(".yaml")),
    "datasets": sorted(p.name for p in importlib.resources.files("yolo_lat.datasets").iterdir()
                       if p.name.endswith(".yaml")),
    "corpus": importlib.resources.files("yolo_lat.text").joinpath("corpus.txt").is_file(),
    "editable_hooks": hooks,
}))
"""


def _import_without_install(path_entry: Path) -> dict:
    """Run :data:`_IMPORTS` with ``path_entry`` on PYTHONPATH and no site processing (so no editable
    install), the installed third-party packages appended to the path, from a neutral folder."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(path_entry)
    site = sysconfig.get_paths()["purelib"]  # torch & co.; its .pth files (the editable install) are not read
    code = f"import sys; sys.path.append({site!r})\n" + _IMPORTS
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=300, cwd="/", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _check_contents(report: dict) -> None:
    assert report["cfg"] == ["yolo-lat-pico.yaml", "yolo-lat.yaml", "yolo12-ela.yaml"], report["cfg"]
    assert "coco.yaml" in report["datasets"], report["datasets"]
    assert report["corpus"] is True
    assert report["editable_hooks"] == []


def test_top_level_folders_are_relative_links_into_the_package():
    for name in LINKED:
        link = ROOT / "yolo_lat" / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", name
        assert link.resolve() == (ROOT / name).resolve() and (ROOT / name / "__init__.py").is_file()


def test_a_bare_checkout_on_the_path_imports_every_subpackage():
    report = _import_without_install(ROOT)
    for name, file in report["files"].items():
        expected = ROOT.joinpath(*name.split("."), "__init__.py")
        assert Path(file) == expected, (name, file)
    _check_contents(report)


def test_docstring_examples_are_collected_once_under_their_package_names():
    """``pytest yolo_lat`` reaches the linked folders' examples as ``yolo_lat.cuda_ops...`` and so on,
    and none under a top-level name (which would import cuda_ops a second time and register its
    custom ops twice)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "yolo_lat"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert len(ids) == len(set(ids))
    for name in LINKED:
        mine = [i for i in ids if i.startswith(f"yolo_lat/{name}/")]
        assert mine and all(f"::yolo_lat.{name}" in i for i in mine), (name, mine[:3])
        assert not [i for i in ids if i.startswith(f"{name}/")], name
    assert "yolo_lat/cuda_ops/__init__.py::yolo_lat.cuda_ops" in ids
    assert any(i.startswith("yolo_lat/cuda_ops/dispatch.py::yolo_lat.cuda_ops.dispatch.") for i in ids)


@pytest.mark.slow
def test_the_wheel_holds_the_linked_folders_and_imports_from_them(tmp_path):
    """A wheel built from the checkout carries the linked folders' files (copies, not links) and
    the YAMLs and the corpus; unpacked on the path, it imports like the checkout."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run([*pip_wheel, "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = tmp_path.glob("yolo_lat-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        links = [info.filename for info in archive.infolist() if (info.external_attr >> 16) & 0o170000 == 0o120000]
        archive.extractall(tmp_path / "unpacked")
    assert not links, links
    for name in LINKED:
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / name).glob("*.py")}
        assert {f"yolo_lat/{s}" for s in sources} <= names, name
    assert {"yolo_lat/cfg/yolo-lat.yaml", "yolo_lat/datasets/coco.yaml", "yolo_lat/text/corpus.txt"} <= names
    report = _import_without_install(tmp_path / "unpacked")
    for name, file in report["files"].items():
        assert Path(file).is_relative_to(tmp_path / "unpacked"), (name, file)
    _check_contents(report)
