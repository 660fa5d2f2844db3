"""One run per output at a time: an advisory OS lock (``fcntl.flock``) on a small file.

:func:`hold_lock` creates ``path`` (holding the owner's pid), locks it without waiting, and
removes it when the block ends. A second process that asks for the same lock fails at once
with :class:`RunLocked`, which names the lock file and the pid of the run that holds it.
The lock is re-entrant within one thread (the CLI holds it around a whole command, and
:func:`~negsample.mine_resumable` takes it again inside), and the OS releases it when its
holder dies, so a killed run never leaves a stale lock behind (a leftover file is simply
locked again).

On systems without ``fcntl`` (Windows) no lock is taken. The implementation lives in
:mod:`negsample._files` (with the atomic writes); this module keeps the public names.
"""

from __future__ import annotations

from .._files import RunLocked, hold_lock

__all__ = ["RunLocked", "hold_lock"]
