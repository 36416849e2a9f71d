"""The Git commit a pipeline file belongs to, recorded with every run."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_state(path: str | Path) -> tuple[str | None, bool | None]:
    """Return (HEAD sha, tree dirty?) for the repository holding `path`, or (None, None).

    "Dirty" counts changes to tracked files only; untracked files do not make a
    run irreproducible on their own.
    """
    directory = Path(path)
    if not directory.is_dir():
        directory = directory.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (sha or None), bool(status.strip())
