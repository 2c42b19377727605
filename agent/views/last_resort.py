"""What `dmp-agent` says when a command ends in a way no command handled: one sentence and
an exit status, never a Python traceback (issue 17). The reader of the output gone
(`dmp-agent documents | head`), Ctrl-C, the input closed where a password or a PIN was
asked, a file or folder missing or refused, and, last, a failure of ours: said in one
line naming what to do (``-v`` shows the traceback for whoever reports it)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from agent.i18n import _

__all__ = ["EXIT_INTERRUPTED", "guarded"]

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130  # 130: the shell's own status for Ctrl-C

log = logging.getLogger("agent.cli")


def _quiet_stdout() -> None:
    """The reader went away: nothing more to say to it, and Python's own flush at exit
    must not fail again on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):  # no stdout: nothing will be flushed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _say(message: str, *, after_prompt: bool = False) -> None:
    """``after_prompt``: a question (a password) may have left the line open."""
    with contextlib.suppress(OSError, ValueError):  # stderr gone too: the status says it
        print(("\n" if after_prompt else "") + f"dmp-agent: {message}", file=sys.stderr,
              flush=True)


def guarded(run: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """``run(argv)``'s exit status, whatever it raised."""
    import getpass
    import warnings

    # getpass's own warning names a Python file; its "may be echoed" line says enough.
    warnings.filterwarnings("ignore", category=getpass.GetPassWarning)
    words = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in words or "--verbose" in words
    try:
        return run(argv)
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        _say(_("interrupted"), after_prompt=True)
        return EXIT_INTERRUPTED
    except EOFError:
        _say(_("the standard input ended where an answer was expected (a password or a PIN): "
               "run the command at a terminal, or give the answer on its standard input"),
             after_prompt=True)
        return EXIT_FAILED
    except OSError as error:
        if verbose:
            raise
        where = f" ({error.filename})" if error.filename else ""
        _say(_("{what}{where}: check that it exists and that you may use it").format(
            what=error.strerror or type(error).__name__, where=where))
        return EXIT_FAILED
    except Exception as error:
        if verbose:
            raise
        log.debug("unexpected failure", exc_info=True)
        _say(_("unexpected failure ({kind}); run the command again with -v to see the "
               "details, and report them").format(kind=type(error).__name__))
        return EXIT_FAILED
