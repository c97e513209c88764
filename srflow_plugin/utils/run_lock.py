"""Run folders: one live process at a time writes into an experiment (or results) folder.

:func:`hold_folder` takes ``<folder>.lock`` (beside the folder, so it stays in place when BasicSR archives an older
folder of the same name to ``<folder>_archived_<time>``), holding this process's PID and host. A second run of the
same name is refused while the holder lives; a lock whose process has died (killed, crashed) is taken over. The lock
is released when the process exits.
"""
import atexit
import os
import socket
from os import path as osp

__all__ = ['process_running', 'lock_path', 'hold_folder', 'release_folder']


def process_running(pid):
    """Whether a process with this PID exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def lock_path(folder):
    """``<folder>.lock``."""
    return osp.abspath(folder).rstrip(os.sep) + '.lock'


def _holder(path):
    """(pid, host) written in a lock file, or None when it cannot be read."""
    try:
        with open(path, encoding='utf-8') as f:
            pid, _, host = f.read().strip().partition(' ')
        return int(pid), host
    except (OSError, ValueError):
        return None


def hold_folder(folder, what='Folder'):
    """Takes the lock of ``folder`` for this process (see the module's doc). Returns the lock's path.

    Raises:
        RuntimeError: naming the folder, the holder's PID and the lock file while another live process holds it.
    """
    path = lock_path(folder)
    os.makedirs(osp.dirname(path), exist_ok=True)
    me = (os.getpid(), socket.gethostname())
    tmp = f'{path}.{me[0]}'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(f'{me[0]} {me[1]}\n')
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)  # atomic: the lock appears with its content, or not at all
                break
            except FileExistsError:
                holder = _holder(path)
                if holder == me:
                    break
                if holder is not None and (holder[1] != me[1] or process_running(holder[0])):
                    raise RuntimeError(f'{what} {folder} is in use by process {holder[0]} on {holder[1]} (lock '
                                       f'{path}): wait for that run to end, or give this one another name. Remove '
                                       'the lock file only if that process is not running.')
                os.remove(path)  # its process is dead: take the folder over
        else:
            raise RuntimeError(f'Could not take the lock {path} of {folder}.')
    finally:
        os.remove(tmp)
    atexit.register(release_folder, folder)
    return path


def release_folder(folder):
    """Removes the lock of ``folder`` if this process holds it."""
    path = lock_path(folder)
    if _holder(path) == (os.getpid(), socket.gethostname()):
        os.remove(path)
