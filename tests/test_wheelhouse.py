"""launch/wheelhouse.py: target platform tags, the project's requirements, and an offline run against a folder of
stand-in wheels (pip resolves and downloads from it as from PyPI): only what the target lacks is collected, next
to muraljax's own wheel."""

from __future__ import annotations

import importlib.util
import pathlib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "launch" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wheelhouse)


def test_a_manylinux_target_accepts_older_manylinux_wheels():
  tags = wheelhouse.platform_tags("manylinux_2_28_x86_64")
  assert tags[0] == "manylinux_2_28_x86_64" and tags[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
  assert len(tags) == 13
  assert wheelhouse.platform_tags("macosx_14_0_arm64") == ["macosx_14_0_arm64"]


def test_requirements_come_from_pyproject():
  core = {wheelhouse.requirement_name(r) for r in wheelhouse.project_requirements([])}
  assert {"jax", "grain", "ml-collections", "orbax-checkpoint"} <= core
  assert not core & {"tensorflow", "tensorflow-cpu", "tensorflow-datasets", "clu", "torch", "tensorboard"}
  with_board = {wheelhouse.requirement_name(r) for r in wheelhouse.project_requirements(["tensorboard"])}
  assert with_board - core == {"tensorboard"}
  with pytest.raises(ValueError, match="no extra 'gpu'; choose from"):
    wheelhouse.project_requirements(["gpu"])
  assert wheelhouse.requirement_name('Array_Record>=0.8; sys_platform != "win32"') == "array-record"


def _stand_in_wheel(folder: pathlib.Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
  """A minimal valid pure-Python wheel `name` `version` declaring `requires`."""
  stem = f"{name.replace('-', '_')}-{version}"
  metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"] +
                     [f"Requires-Dist: {r}\n" for r in requires])
  files = {f"{stem}.dist-info/METADATA": metadata,
           f"{stem}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
           f"{name.replace('-', '_')}/__init__.py": ""}
  files[f"{stem}.dist-info/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{stem}.dist-info/RECORD,,\n"
  with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
    for path, text in files.items():
      wheel.writestr(path, text)


def test_only_what_the_target_lacks_is_collected(tmp_path, monkeypatch):
  index = tmp_path / "index"
  index.mkdir()
  for name, version, requires in (("grain", "0.2.99", ("array-record>=0.8", "numpy")), ("array-record", "0.8.9", ()),
                                  ("ml-collections", "1.9", ("absl-py",)), ("numpy", "9.9", ()),
                                  ("absl-py", "9.9", ())):
    _stand_in_wheel(index, name, version, requires)
  monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # No index or wheel folder of this machine's pip config.
  monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
  core = {wheelhouse.requirement_name(r) for r in wheelhouse.project_requirements([])}
  present = core - {"grain", "array-record", "ml-collections"}

  wheels = wheelhouse.build(tmp_path / "out", wheelhouse.project_requirements([]), present, "3.12",
                            "manylinux_2_28_x86_64", ["--no-index", "--find-links", str(index)])

  assert sorted(path.name.split("-")[0] for path in wheels) == ["array_record", "grain", "ml_collections", "muraljax"]
  with zipfile.ZipFile(next(p for p in wheels if p.name.startswith("muraljax"))) as project:
    names = project.namelist()
  assert "muraljax/metrics/lpips_alexnet.npz" in names  # The package data travels in the wheel.
  assert any(name.startswith("muraljax/weights/inpaint-small/") for name in names)
