"""Command lines: arguments checked as they are parsed, and bad input told in one line.

Every command (``python -m tinycnn.train``, ``python -m vis.<technique>``) parses with
``ArgumentParser``: a bad command line is one ``error:`` line on stderr and exit status 2,
argparse's convention, never a usage block or a traceback. Numbers are checked by their
types (``count``, ``index``, ``positive``, ``non_negative``) and the files a long run will
write by ``npz_to_write``, so that nothing heavy starts on arguments that cannot work.

Bad input found later (a file that cannot be read) ends the same way: every command runs
its body inside ``one_line_errors``, and reads each file inside ``reading(path)``, which
names the file in whatever its reader raised. A reader's MemoryError, RecursionError or
OverflowError there is the file's doing (a forged header, a nesting, a number out of
range), so it is told as the file's problem, not as "out of memory".
"""
import argparse
import contextlib
import math
import sys
from pathlib import Path

USAGE_ERROR = 2    # argparse's exit status for a bad command line; tinycnn's for every bad input


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless its text gives it or it has none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return text
        value = action.default
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return f"{text} (default: {shown.replace('%', '%%')})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``error:`` line (no usage block), the usage
    names the command as it is typed (``python -m <module>``), and help shows defaults."""

    def __init__(self, *args, module=None, **kwargs):
        if module and "prog" not in kwargs:
            kwargs["prog"] = f"python -m {module}"
        super().__init__(*args, formatter_class=HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(USAGE_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def fail(message):
    """End a command on bad input: one ``error:`` line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def bad_input():
    """The exceptions that mean bad input (an argument, a file), each told as one line."""
    from PIL import Image

    from ..backend import BackendError
    from .data import DataError
    from .torch_checkpoint import UnsafeCheckpointError
    return (ValueError, LookupError, TypeError, OSError, OverflowError, BackendError, DataError,
            UnsafeCheckpointError, Image.DecompressionBombError)


def message(error):
    """The text of an exception, without the quotes a KeyError's str() adds."""
    args = error.args
    return args[0] if len(args) == 1 and isinstance(args[0], str) else str(error)


@contextlib.contextmanager
def one_line_errors(advice):
    """Run a command's body: bad input raised inside ends in one ``error:`` line and exit
    status 2, never a traceback. advice: what needs less memory, said after "out of memory"."""
    try:
        yield
    except MemoryError as e:          # sizes are bounded by memory only: say so in a line
        fail(f"out of memory{': ' + str(e) if str(e) else ''}; {advice}")
    except RecursionError as e:
        fail(f"input nested too deeply to read ({e})")
    except bad_input() as e:
        fail(message(e))


@contextlib.contextmanager
def reading(path, *, name_it=True):
    """Read the file ``path`` inside: what its reader raises becomes a ValueError naming it.
    name_it=False: only a MemoryError, RecursionError or OverflowError is renamed (for code
    that also raises errors of its own, about other things)."""
    try:
        yield
    except MemoryError:
        raise ValueError(f"cannot read {path}: reading it asks for more memory than there "
                         f"is{_size(path)}") from None
    except RecursionError:
        raise ValueError(f"cannot read {path}: it is nested too deeply") from None
    except OverflowError as e:
        raise ValueError(f"cannot read {path}: a number in it is out of range ({e})") from None
    except bad_input() as e:
        if not name_it or Path(str(path)).name in message(e):
            raise
        raise ValueError(f"cannot read {path}: {message(e)}") from None


def _size(path):
    """The words " (a file of N bytes)", or none where ``path`` names no file."""
    try:
        return f" (a file of {Path(path).stat().st_size} bytes)"
    except (OSError, TypeError, ValueError):
        return ""


def _number(convert, ok, what):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    parse.__name__ = what      # argparse names the type in its messages
    return parse


# sizes, steps, epochs, how many; channels, seeds, image indices; rates, weights
count = _number(int, lambda v: v > 0, "a positive integer")
index = _number(int, lambda v: v >= 0, "a non-negative integer")
positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
non_negative = _number(float, lambda v: math.isfinite(v) and v >= 0, "a non-negative number")


def npz_to_write(text):
    """An argparse type: the path of an .npz file to write (weights, a checkpoint). Its folder
    is made at once, so that a training run cannot end, hours later, unable to save."""
    path = Path(text)
    if path.suffix != ".npz" or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not the path of an .npz file to write")
    try:
        path.resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot make the folder of {text}: {e}") from None
    return text
