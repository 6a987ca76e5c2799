"""A folder of wheels that installs muraljax with no network on a machine that already has JAX.

  python launch/wheelhouse.py --python 3.12 --platform manylinux_2_28_x86_64 --out wheelhouse/

Accelerator images (cluster modules, cloud deep-learning images) ship JAX for CUDA or TPU, flax, optax,
orbax-checkpoint, numpy, pillow, scipy and tensorboard, but not grain or ml-collections, and often cannot reach
PyPI. On a machine with network this resolves muraljax's core requirements (pyproject.toml, plus `--extras`) for
the target Python and platform, takes away every package the image already has (`--present`: a `pip freeze` of
the image; by default everything STOCK_IMAGE's packages install), downloads the wheels of the rest next to a wheel
of muraljax itself, prints them with their sizes, and prints the command that installs from the folder offline.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
STOCK_IMAGE = ("jax", "flax", "optax", "orbax-checkpoint", "numpy", "pillow", "scipy", "tensorboard")
"""What a stock JAX accelerator image has installed (with all their dependencies)."""
_OLDEST_MANYLINUX = 17


def canonical(name: str) -> str:
  """A distribution name as PEP 503 compares them: 'Orbax_Checkpoint' -> 'orbax-checkpoint'."""
  return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
  """The distribution a requirement line names: 'grain>=0.2.12; sys_platform != "win32"' -> 'grain'."""
  return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def project_requirements(extras: list[str], pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
  """The core dependencies of pyproject.toml plus those of `extras`; raises ValueError for an unknown extra."""
  project = tomllib.loads(pyproject.read_text())["project"]
  optional = project.get("optional-dependencies", {})
  unknown = sorted(set(extras) - set(optional))
  if unknown:
    raise ValueError(f"pyproject.toml has no extra {unknown[0]!r}; choose from {sorted(optional)}.")
  return list(project["dependencies"]) + [r for extra in extras for r in optional[extra]]


def platform_tags(platform: str) -> list[str]:
  """pip's --platform values for a target: a manylinux_2_N tag also accepts every older manylinux wheel down to
  manylinux2014 (glibc 2.17), as pip does for the machine it runs on; any other tag is taken as it is."""
  match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
  if not match:
    return [platform]
  newest, arch = int(match.group(1)), match.group(2)
  return [f"manylinux_2_{n}_{arch}" for n in range(newest, _OLDEST_MANYLINUX - 1, -1)] + [f"manylinux2014_{arch}"]


def _target_options(python: str, platform: str, pip_options: list[str]) -> list[str]:
  tags = [option for tag in platform_tags(platform) for option in ("--platform", tag)]
  return ["--only-binary=:all:", "--python-version", python, *tags, *pip_options]


def resolve(requirements: list[str], python: str, platform: str, pip_options: list[str]) -> dict[str, dict]:
  """{canonical name: {'name', 'version', 'url'}} of every wheel pip would install for `requirements` on the
  target (dependencies included), from a dry-run resolution: only metadata is fetched where the index serves it."""
  if not requirements:
    return {}
  with tempfile.TemporaryDirectory() as scratch:
    report = pathlib.Path(scratch) / "report.json"
    # --target (never written to by a dry run) because pip before 24 refuses --platform without it.
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    "--target", str(pathlib.Path(scratch) / "unused"), "--report", str(report),
                    *_target_options(python, platform, pip_options), *requirements], check=True)
    resolved = json.loads(report.read_text())["install"]
  return {canonical(item["metadata"]["name"]): {"name": item["metadata"]["name"],
                                                "version": item["metadata"]["version"],
                                                "url": item["download_info"]["url"]} for item in resolved}


def read_present(freeze_file: pathlib.Path) -> set[str]:
  """The distribution names of a `pip freeze` (or `pip list --format=freeze`) listing."""
  lines = (line.strip() for line in freeze_file.read_text().splitlines())
  return {requirement_name(line) for line in lines if line and not line.startswith(("#", "-"))}


def build(out: pathlib.Path, requirements: list[str], present: set[str], python: str, platform: str,
          pip_options: list[str]) -> list[pathlib.Path]:
  """Downloads into `out` the wheels of `requirements` and their dependencies that `present` lacks, and builds
  muraljax's own wheel there; returns the wheel files."""
  needed = [r for r in requirements if requirement_name(r) not in present]
  missing = {key: item for key, item in resolve(needed, python, platform, pip_options).items() if key not in present}
  out.mkdir(parents=True, exist_ok=True)
  if missing:
    pins = [f"{item['name']}=={item['version']}" for item in missing.values()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(out),
                    *_target_options(python, platform, pip_options), *pins], check=True)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                  "--wheel-dir", str(out), str(ROOT)], check=True)
  wanted = set(missing) | {"muraljax"}
  return sorted(path for path in out.glob("*.whl") if canonical(path.name.split("-")[0]) in wanted)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "wheelhouse", help="Folder for the wheels.")
  parser.add_argument("--python", default="3.12", help="Target Python version, e.g. 3.12.")
  parser.add_argument("--platform", default="manylinux_2_28_x86_64",
                      help="Target platform tag: manylinux_2_28_x86_64 (x86-64 Linux with glibc 2.28 or newer), "
                           "manylinux_2_28_aarch64, ...")
  parser.add_argument("--extras", default="", help="Comma-separated extras of muraljax to include, e.g. tensorboard.")
  parser.add_argument("--present", type=pathlib.Path,
                      help="`pip freeze` output of the target image; default: what installing "
                           f"{', '.join(STOCK_IMAGE)} installs.")
  parser.add_argument("--pip-option", action="append", default=[], dest="pip_options",
                      help="Passed to pip (repeatable), e.g. --pip-option=--index-url=URL.")
  args = parser.parse_args(argv)
  try:
    requirements = project_requirements([e for e in args.extras.split(",") if e])
  except ValueError as error:
    parser.error(str(error))
  if args.present:
    present = read_present(args.present)
  else:
    present = set(resolve(list(STOCK_IMAGE), args.python, args.platform, args.pip_options))
  wheels = build(args.out, requirements, present, args.python, args.platform, args.pip_options)

  total = sum(path.stat().st_size for path in wheels)
  width = max(len(path.name) for path in wheels)
  for path in wheels:
    print(f"{path.name:<{width}}  {path.stat().st_size / 2**20:8.2f} MB")
  print(f"{len(wheels)} wheels, {total / 2**20:.1f} MB in {args.out}")
  print(f"Install on the target (no network): pip install --no-index --find-links {args.out} muraljax")


if __name__ == "__main__":
  main()
