"""What every muraljax command line shares: absl flags, a --help that exits 0, and one way to stop on a mistake.

Every command (muraljax.main, .evaluate, .restore, .restore.shipped, .restore.example, .port, .data.prepare) runs
through `run`, so they all end the same way:

  0    it finished (or --help printed the command's flags);
  2    it stopped on a mistake it can name: a bad flag or config field, an input file, dataset or checkpoint that
       cannot be used, a run that cannot go on (the loss diverged, a checkpoint cannot be saved); the last line on
       stderr is `Error: ` and one sentence that says what to do, with no traceback;
  1    anything unexpected: Python's traceback (a bug worth reporting);
  130  (muraljax.restore) stopped by Ctrl-C or SIGTERM, nothing written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

STOPPED = 2  # the exit status of a mistake the command can name
_HELP = ("--help", "-help", "-h", "--helpshort", "-?")
# Errors whose message is the whole story, raised by modules a command may never import: importing them here would
# load JAX and the training stack before main.py may (and slow every --help).
_LOADED_ERRORS = (("muraljax.train.loop", "TrainingDiverged"), ("muraljax.train.checkpoint", "CheckpointSaveError"))


class CommandError(ValueError):
  """A command line that cannot run as given (a missing, unknown or contradictory flag, a config file that does not
  load, an optional dependency the command needs); the message says what to do."""


def stopping_errors() -> tuple[type[Exception], ...]:
  """The errors that stop a command with their one-sentence message: ValueError, which every muraljax input error
  subclasses (CommandError, DataError, PortError, RestoreError, InitFromError, ShardingError) and which configs and
  models raise for a bad setting, and the training run's own failures when their modules are loaded (a command that
  never loaded them cannot raise them)."""
  return (ValueError, *(getattr(sys.modules[module], name) for module, name in _LOADED_ERRORS
                        if module in sys.modules))


def run(command: Callable[[list[str]], object], flag_values: flags.FlagValues, doc: str,
        argv: Sequence[str] | None = None, *, arguments: bool = False, overrides: bool = False) -> int:
  """Runs `command` as a command line; returns the exit status (see above).

  `argv` (default sys.argv[1:]) is parsed into `flag_values` by `parse`; `command` gets what is left: the positional
  arguments where `arguments`, and unknown `--config.` overrides where `overrides`. --help prints `doc` and the
  flags. A stopping error prints 'Error: <its message>' on stderr; any other exception propagates.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  flags_part = argv[:argv.index("--")] if "--" in argv else argv
  if any(arg in _HELP for arg in flags_part):
    print(usage(flag_values, doc))
    return 0
  try:
    command(parse(flag_values, argv, arguments=arguments, overrides=overrides))
  except stopping_errors() as error:  # evaluated after `command`: the errors of what it imported count
    logging.debug("Stopped by", exc_info=error)
    print(f"Error: {error}", file=sys.stderr)
    return STOPPED
  return 0


def parse(flag_values: flags.FlagValues, argv: Sequence[str], *, arguments: bool = False,
          overrides: bool = False) -> list[str]:
  """Sets `flag_values` from `argv` (no program name; flags it does not name take their defaults); returns the
  positional arguments (`arguments`) and unknown flags (`overrides`: the command reads `--config.` overrides itself).
  A bad command line raises CommandError."""
  flag_values.unparse_flags()  # a command run twice in one process starts from the defaults again
  try:
    rest = flag_values(["muraljax", *argv], known_only=overrides)[1:]
  # config_flags raises the last four for a --config.field=value it cannot apply.
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as error:
    raise CommandError(f"bad command line: {_one_sentence(error)}") from None
  unexpected = [arg for arg in rest if not (arguments or overrides and arg.startswith("-"))]
  if unexpected:
    raise CommandError(f"bad command line: unexpected argument {unexpected[0]!r}; --help lists the flags.")
  return rest


def _one_sentence(error: Exception) -> str:
  """absl's and config_flags' message for a bad command line, on one line without the config file's traceback."""
  text = str(error).strip()
  raised_by_config = re.match(r"flag (\S+): Error whilst parsing config file", text)
  if raised_by_config and "Traceback (most recent call last)" in text:
    # config_flags embeds the config file's traceback; its last line is the sentence that names the fix.
    return f"{raised_by_config.group(1)}: {text.splitlines()[-1].partition(': ')[2]}"
  required = re.fullmatch(r"flag --(\S+)=None: Flag --\S+ must have a value other than None\.", text)
  if required:
    return f"--{required.group(1)} is required; --help says what it takes."
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # a KeyError's message comes quoted
    text = text[1:-1]
  return text.replace("\\'", "'").replace("\\n", " ").replace("\n", " ")


def usage(flag_values: flags.FlagValues, doc: str) -> str:
  """`doc` and the command's own flags (not absl's logging and debugging flags, which main.py also accepts)."""
  listing = (flag_values.main_module_help() if flag_values is flags.FLAGS else
             flag_values.get_help(include_special_flags=False))
  own = "\n".join(line for line in listing.splitlines() if line.startswith(" "))  # without the module headings
  return f"{doc.strip()}\n\nflags:\n{own}"


def loaded_config(flag_values: flags.FlagValues, name: str = "config") -> ml_collections.ConfigDict | None:
  """The config_flags flag `name`, loaded; None when it was not given. A file that cannot be loaded raises
  CommandError with one sentence."""
  from muraljax import config as config_lib  # pylint: disable=g-import-not-at-top

  config = flag_values[name].value
  if config is None or isinstance(config, ml_collections.ConfigDict):
    return config
  # config_flags stands in an object that raises on use for a config file that failed to load; our own loader
  # says why in one sentence.
  spec = config_flags.get_config_filename(flag_values[name])
  try:
    config_lib.load(spec)
  except ValueError as error:  # names the spec and the fix
    raise CommandError(f"--{name} {error}") from None
  except Exception as error:  # pylint: disable=broad-except  # whatever else the config file raised
    raise CommandError(f"--{name} {spec} cannot be loaded ({type(error).__name__}: {error}); fix the file.") from None
  raise CommandError(f"--{name} {spec} cannot be loaded; check that it defines get_config().")
