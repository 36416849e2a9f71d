"""Which local blobs this process already knows hold their hash, so reads can skip re-hashing.

Every read verifies a blob's sha256 (G5), and hashing is most of what it
costs to hand a large value from task to task. Much of it repeats work: the
writer hashed the bytes as it wrote them, and a second reader hashes what
the first one just did. This module remembers, per digest, the identity of
the file found to hold exactly those bytes, as fstat gives it:
(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns). A read whose file
shows that identity before and after reading skips the hash; any other
read hashes as before.

Why an unchanged identity means unchanged bytes:
- Every change to a file's bytes through the kernel (write, truncate, a
  store through mmap, an O_TRUNC rewrite) sets its mtime to the current
  time, and its ctime too; every other change to the inode (chmod, utime,
  link, rename) sets its ctime. Replacing the file (rename over it, delete
  and create) gives another inode, or, where the number is reused, new
  timestamps.
- Timestamps are only as fine as the kernel's clock tick (a few ms on
  kernels before Linux 6.13's multigrain timestamps) or the filesystem's
  granularity (up to 2 s), so a change soon after the previous one could
  leave the mtime as it was. So a file is remembered only if its mtime is
  at least `_SETTLED_NS` older than the moment this process started reading
  it (or, for its own blobs, publishing it): any change to its bytes from
  then on gives it a newer mtime, hence another identity.
- Blobs lockgate writes qualify at once: before publishing one, the writer
  sets its mtime `_SETTLED_NS` before its last write (`settle_mtime`).
  Other files qualify once they are that old.
- What this cannot see: changes beneath the filesystem (a disk editor, bit
  rot, which this process's page cache would hide anyway), forgery that
  rewrites the same number of bytes and then sets the old mtime back on
  purpose, and a wall clock stepped back by more than `_SETTLED_NS`. None
  of that is the accidental corruption, crash or planted link that G5
  guards against; `verify` and every new process hash the bytes regardless.

The memory is per process (a forked child inherits it, still tied to file
identity, so still sound), bounded, and safe to use from several threads.
"""

from __future__ import annotations

import os
import threading

__all__ = ["forget", "known", "remember_hashed", "remember_written", "settle_mtime"]

_SECOND_NS = 1_000_000_000
# One clock tick (<= 10 ms) plus the coarsest common timestamp granularity
# (2 s on FAT), with room to spare: a file whose mtime is older than this
# gets a different mtime from any change to its bytes made from now on.
_SETTLED_NS = 3 * _SECOND_NS
# Enough for every blob a long worker keeps handing on; the oldest go first.
_MAX_ENTRIES = 4096

_Identity = tuple[int, int, int, int, int]

_lock = threading.Lock()
_known: dict[str, _Identity] = {}


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remember(digest: str, info: os.stat_result) -> None:
    with _lock:
        _known.pop(digest, None)  # re-insert at the end: the newest is evicted last
        _known[digest] = _identity(info)
        while len(_known) > _MAX_ENTRIES:
            del _known[next(iter(_known))]


def known(digest: str, info: os.stat_result) -> bool:
    """True if the file `info` describes is one this process saw hold `digest`'s bytes.

    Args:
        digest: the blob's name.
        info: fstat (or lstat) of the file now under that name.
    """
    with _lock:
        return _known.get(digest) == _identity(info)


def forget(digest: str) -> None:
    """Stop trusting whatever file held `digest` (it was deleted or found corrupt)."""
    with _lock:
        _known.pop(digest, None)


def settle_mtime(fd: int) -> int | None:
    """Move a finished, unpublished blob's mtime `_SETTLED_NS` before its last write.

    Any later change to its bytes sets the mtime to the current time, so the
    mtime this returns comes back only if someone sets it on purpose; and
    any process reading the blob can remember it at once (`remember_hashed`).

    Args:
        fd: the blob's temp file, open for writing, with all its bytes written.

    Returns:
        The mtime the file now has, to pass to `remember_written`; None if the
        filesystem did not take it (the blob then is simply not remembered).
    """
    before = os.fstat(fd)
    try:
        os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns - _SETTLED_NS))
    except OSError:
        return None
    settled = os.fstat(fd).st_mtime_ns
    return settled if settled <= before.st_mtime_ns - _SETTLED_NS else None


def remember_written(digest: str, fd: int, settled_mtime: int | None) -> None:
    """Remember a blob this process wrote, hashed and published.

    Call after the rename that published it (a rename changes the ctime).

    Args:
        digest: the sha256 of the bytes written.
        fd: the blob's file, still open.
        settled_mtime: what `settle_mtime` returned before publishing; if the
            mtime differs now, the bytes may have changed since, and the blob
            is not remembered.
    """
    info = os.fstat(fd)
    if settled_mtime is not None and info.st_mtime_ns == settled_mtime:
        _remember(digest, info)


def remember_hashed(digest: str, fd: int, since_ns: int) -> None:
    """Remember a file whose bytes this process just read and found to hash to `digest`.

    Args:
        digest: the blob's name, which its bytes matched.
        fd: the file that was read, still open.
        since_ns: `time.time_ns()` from before the first byte was read. Unless
            the file's mtime is `_SETTLED_NS` older than that, it is not
            remembered: a change during or soon after the read could leave
            its mtime as it is.
    """
    info = os.fstat(fd)
    if info.st_mtime_ns <= since_ns - _SETTLED_NS:
        _remember(digest, info)
