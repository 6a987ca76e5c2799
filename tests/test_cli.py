"""muraljax.cli: every command's --help exits 0 with its own flags; mistakes stop with one sentence and status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from absl import flags
from conftest import REPO

from muraljax import cli

# Each command with one of its own flags, which its --help must list.
COMMANDS = {"muraljax.main": "--workdir", "muraljax.evaluate": "--checkpoint", "muraljax.restore": "--image",
            "muraljax.restore.shipped": "--card", "muraljax.restore.example": "--steps", "muraljax.port": "--src",
            "muraljax.data.prepare": "--manual_dir"}


def test_help_exits_0_and_lists_the_commands_own_flags_only():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  children = {module: subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=REPO, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE) for module in COMMANDS}
  for module, child in children.items():
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, (module, err[-2000:])
    assert f"python -m {module}" in out and f"\n  {COMMANDS[module]}" in out, (module, out)
    assert "--verbosity" not in out and "--flagfile" not in out, module  # absl's own flags stay out of it


def _flags() -> flags.FlagValues:
  flag_values = flags.FlagValues()
  flags.DEFINE_integer("count", 1, "How many.", flag_values=flag_values)
  flags.DEFINE_string("name", None, "Who.", required=True, flag_values=flag_values)
  return flag_values


def _fail(error: Exception):
  def command(arguments: list[str]) -> None:
    raise error
  return command


@pytest.mark.parametrize("argv, message", [
    (["--name=a", "--count=x"], "Error: bad command line: flag --count=x: invalid literal for int()"),
    (["--count=2"], "Error: bad command line: --name is required; --help says what it takes."),
    (["--name=a", "--colour=red"], "Error: bad command line: Unknown command line flag 'colour'"),
    (["--name=a", "stray"], "Error: bad command line: unexpected argument 'stray'; --help lists the flags."),
])
def test_a_bad_command_line_is_one_sentence_and_status_2(capsys, argv, message):
  assert cli.run(_fail(AssertionError("not reached")), _flags(), "doc", argv) == cli.STOPPED == 2
  err = capsys.readouterr().err
  assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_the_projects_errors_stop_with_their_sentence_and_others_keep_their_traceback(capsys):
  from muraljax.data.errors import DataError  # pylint: disable=g-import-not-at-top
  from muraljax.train import loop  # pylint: disable=g-import-not-at-top

  for error in (DataError("No images found in x; pass another folder."), ValueError("--config.a is negative."),
                loop.TrainingDiverged("The loss is NaN at step 3; lower the learning rate.")):
    assert cli.run(_fail(error), _flags(), "doc", ["--name=a"]) == 2
    assert capsys.readouterr().err == f"Error: {error}\n"
  with pytest.raises(KeyError):
    cli.run(_fail(KeyError("bug")), _flags(), "doc", ["--name=a"])


def test_flags_start_from_their_defaults_each_run_and_help_wins(capsys):
  flag_values, seen = _flags(), []
  command = lambda arguments: seen.append((flag_values.count, flag_values.name, arguments))
  assert cli.run(command, flag_values, "doc", ["--name=a", "--count=3", "x"], arguments=True) == 0
  assert cli.run(command, flag_values, "doc", ["--name=b"]) == 0
  assert seen == [(3, "a", ["x"]), (1, "b", [])]
  assert cli.run(command, flag_values, "The doc.", ["--count=oops", "--help"]) == 0
  assert capsys.readouterr().out.startswith("The doc.\n\nflags:\n  --count: How many.")


def test_the_folder_flags_keep_their_older_spellings(tmp_path, capsys):
  from muraljax.evaluate import __main__ as evaluate  # pylint: disable=g-import-not-at-top
  from muraljax.restore import shipped  # pylint: disable=g-import-not-at-top

  cli.parse(evaluate.FLAGS, ["--checkpoint=runs/x", "--output_dir=results"])
  assert evaluate.FLAGS.out == "results"
  card = tmp_path / "missing.md"
  for argv in (["runs/x", "name"], ["--checkpoint=runs/x", "--name=name"]):  # either form reaches the card
    assert shipped.main([*argv, f"--card={card}"]) == 2
    assert capsys.readouterr().err == f"Error: --card {card} is not a file; pass the model card (Markdown) to ship.\n"
  assert shipped.main(["runs/x", "--name=name", f"--card={card}"]) == 2
  assert "--checkpoint RUN --name NAME --card CARD.md." in capsys.readouterr().err
