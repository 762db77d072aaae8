"""
Process memory from ``/proc``, for the benchmark workers (stdlib only: it runs inside measured processes).

``reset_peak`` writes ``5`` to ``/proc/self/clear_refs``, which resets VmHWM to the current RSS, so VmHWM
read later is the peak of what ran in between, not of whatever the process did before.
"""

from __future__ import annotations


def status_kb(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field (VmRSS, VmHWM) of ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
