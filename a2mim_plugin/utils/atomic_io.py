"""Crash-safe file writes: a path holds its old or its new content, never a partial one."""
import os
import os.path as osp

PARTIAL_SUFFIX = '.partial'


def fsync_dir(path: str) -> None:
    """Flush a directory entry (the result of a rename) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    """Flush a written file's data to disk."""
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always the old or the new content.

    The bytes go to a temporary file in the same directory (so the rename cannot cross file
    systems), are fsync'ed, and the file is renamed over ``path`` with ``os.replace``, which
    POSIX makes atomic; then the directory is fsync'ed so the rename itself is durable.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}{PARTIAL_SUFFIX}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(directory)
