"""muraljax.config.load and set_field: the one way configs are read outside `--config` (port, benchmarks, tests)."""

import pytest

from conftest import REPO
from muraljax import config as config_lib

HINET = REPO / "configs" / "hinet.py"


def test_a_variant_and_overrides_are_applied_with_their_types():
  config = config_lib.load(f"{HINET}:smoke", ["model.wf=4", "train.remat=blocks", "mesh.shape={'data': 2}"])
  assert config.model.wf == 4 and isinstance(config.model.wf, int)
  assert config.train.remat == "blocks"  # Not a Python literal: kept as the string.
  assert dict(config.mesh.shape) == {"data": 2}
  assert config.train.num_steps == config_lib.load(f"{HINET}:smoke").train.num_steps
  assert config.train.num_steps != config_lib.load(HINET).train.num_steps  # The default variant differs.


@pytest.mark.parametrize("spec, message", [
    ("configs/nothing.py", "configs/nothing.py is not a file"),
    (f"{HINET}:no-such-variant", "no-such-variant"),
])
def test_a_missing_file_or_unknown_variant_is_named(spec, message):
  with pytest.raises(ValueError, match=message):
    config_lib.load(spec)


@pytest.mark.parametrize("assignment, message", [
    ("model.wff=4", "has no field model.wff"),
    ("model.wf.x=4", "has no field model.wf.x"),
    ("model.wf", "give the field a value"),
    ("model.wf='wide'", "model.wf='wide'"),  # A string where an int belongs.
])
def test_a_bad_override_is_refused_and_changes_nothing(assignment, message):
  config = config_lib.load(f"{HINET}:smoke")
  before = config.to_dict()
  with pytest.raises(ValueError, match=message):
    config_lib.set_field(config, assignment)
  assert config.to_dict() == before


@pytest.mark.parametrize("assignment, message", [
    ("train.num_steps=-5", r"train.num_steps=-5 is out of range: it must be >= 1"),
    ("train.checkpoint_every=0", r"train.checkpoint_every=0 .* >= 1"),
    ("train.log_every=0", r"train.log_every=0 .* >= 1"),
    ("train.ema_decay=1.0", r"train.ema_decay=1.0 .* in \[0, 1\)"),
    ("optimizer.learning_rate=0.0", r"optimizer.learning_rate=0.0 .* > 0"),
    ("seed=-1", r"seed=-1 .* in \[0, 2\^32\)"),
    ("restore.ensemble=3", r"restore.ensemble=3 .* one of \[1, 2, 4\]"),
])
def test_numeric_fields_out_of_range_stop_training_before_anything_is_written(tmp_path, assignment, message):
  from muraljax.train import loop  # pylint: disable=g-import-not-at-top

  config = config_lib.load(REPO / "configs" / "hinet.py:smoke", [assignment])
  with pytest.raises(ValueError, match=message):
    loop.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  config_lib.check_ranges(config_lib.load(REPO / "configs" / "diffumural.py:paper"))  # the shipped configs pass


@pytest.mark.parametrize("where", ["an existing file", "below a file"])
def test_a_workdir_that_cannot_be_written_is_refused_before_compiling(tmp_path, where):
  from muraljax.train import loop  # pylint: disable=g-import-not-at-top

  (tmp_path / "file").write_text("x")
  workdir = tmp_path / "file" if where == "an existing file" else tmp_path / "file" / "run"
  with pytest.raises(ValueError, match=f"--workdir {workdir} cannot be written \\({tmp_path / 'file'} is a file"):
    loop.run(config_lib.load(REPO / "configs" / "hinet.py:smoke"), str(workdir))
