"""Writing outputs without destroying work: every command that writes goes through here.

An output is written under a temporary name beside it (``.NAME.tmp-PID``) and renamed into place only when
everything it belongs with was written, so an interruption, a full disk or a read-only folder leaves the
previous file as it was. An existing output is replaced only with ``--force``, and never when it is not a
regular file (a device, a folder, a link): renaming over it would replace the node itself.
"""
from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output that cannot or may not be written."""


def temporary_name(path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def check_output(path, force: bool = False):
    """Refuse an output path whose folder is missing, that exists without ``force``, or that exists and is
    not a regular file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path}: exists and is not a regular file; refusing to replace it")
    if not force:
        raise OutputError(f"{path}: exists; pass --force to overwrite it")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TEMPORARY = re.compile(r"^\.?(.+)\.tmp-(\d+)")


def remove_stale_temporaries(*paths):
    """Remove temporaries of ``paths`` left by processes that no longer run (killed, or the machine went
    down). The names of earlier releases (``NAME.tmp-PID``) are recognised too. One listing per folder."""
    by_folder = {}
    for path in map(Path, paths):
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and match.group(1) in names and not _pid_alive(int(match.group(2))):
                try:
                    if entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                except OSError:
                    pass


def _cannot_write(path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    return OutputError(f"{path}: cannot write ({reason}); nothing was changed")


@contextmanager
def staged(paths, force: bool = False):
    """Temporary names for ``paths``, renamed into place together when the block ends without error;
    on any error (or interruption) every temporary is removed and the outputs are as before. OSErrors
    (full disk, read-only folder) become one :class:`OutputError` naming the output."""
    paths = [Path(p) for p in paths]
    for path in paths:
        check_output(path, force)
    remove_stale_temporaries(*paths)
    temporaries = [temporary_name(p) for p in paths]
    try:
        try:
            yield temporaries
        except OSError as exc:
            named = next((p for p, t in zip(paths, temporaries) if exc.filename in (str(t), t)), paths[0])
            raise _cannot_write(named, exc) from None
        for path in paths:  # the outputs may have changed while we wrote
            check_output(path, force)
        for path, tmp in zip(paths, temporaries):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _cannot_write(path, exc) from None
    finally:
        for tmp in temporaries:
            try:
                os.unlink(tmp)
            except OSError:  # renamed into place already, or never written
                pass


def write_bytes(path, data: bytes, force: bool = True):
    """``data`` to ``path`` through a temporary file and a rename (the whole file or nothing)."""
    with staged([path], force=force) as (tmp,):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text: str, force: bool = True):
    write_bytes(path, text.encode(), force=force)
