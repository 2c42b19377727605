"""Is a process still there? One answer per platform.

``os.kill(pid, 0)`` probes a process on POSIX; on Windows the same call ends it
(TerminateProcess with exit code 0), so there the process is asked for its exit code.
"""

from __future__ import annotations

import os
import sys

_STILL_ACTIVE = 259  # GetExitCodeProcess's answer while the process runs
_QUERY_LIMITED_INFORMATION = 0x1000


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (one we may not signal counts as gone, as before)."""
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and (
                code.value == _STILL_ACTIVE)
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def reap(pid: int) -> bool:
    """Collect ``pid``'s exit status if it is our ended child (POSIX; else a zombie
    lingers); whether it was. Windows has no zombies: always False there."""
    if sys.platform == "win32":
        return False
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False
