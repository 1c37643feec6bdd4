"""Writing outputs without destroying work: every command that writes goes through here.

An output is written under a temporary name beside it (``.NAME.tmp-PID``) and renamed into place only when
everything it belongs with was written, so an interruption, a full disk or a read-only folder leaves the
previous file as it was. An existing output is replaced only with ``--force``, and never when it is not a
regular file (a device, a folder, a link): renaming over it would replace the node itself, and never when it is
a file this process has read (:func:`reading`): ``srnn render IN.mid -o IN.mid --force`` must not replace
its own input, in any command.
"""
from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output that cannot or may not be written."""


_INPUTS = None  # inside a command: (device, inode) -> path of every file it has read through reading()


@contextmanager
def command_inputs():
    """The scope of one command (the command line enters it for each): the files it reads may not be
    replaced by its outputs. Outside it (the Python API, tests) nothing is tracked."""
    global _INPUTS
    saved, _INPUTS = _INPUTS, {}
    try:
        yield
    finally:
        _INPUTS = saved


def reading(path):
    """Note that the running command reads ``path`` (every reader of MIDI, data, checkpoints and run records
    calls this), so that none of its outputs replaces it. Returns the path."""
    if _INPUTS is None:
        return path
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return path
    _INPUTS[(st.st_dev, st.st_ino)] = str(path)
    return path


def _input_named(path) -> str | None:
    if not _INPUTS:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _INPUTS.get((st.st_dev, st.st_ino))


def temporary_name(path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def check_output(path, force: bool = False, update: bool = False):
    """Refuse an output path whose folder is missing, that exists without ``force``, that exists and is
    not a regular file, or that this process has read (unless ``update``: a run's own checkpoints and
    records, which training reads and rewrites on purpose)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path}: exists and is not a regular file; refusing to replace it")
    source = None if update else _input_named(path)
    if source is not None:
        raise OutputError(f"{path}: is an input of this command ({source}); write the output elsewhere")
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
def staged(paths, force: bool = False, update: bool = False):
    """Temporary names for ``paths``, renamed into place together when the block ends without error;
    on any error (or interruption) every temporary is removed and the outputs are as before. OSErrors
    (full disk, read-only folder) become one :class:`OutputError` naming the output."""
    paths = [Path(p) for p in paths]
    for path in paths:
        check_output(path, force, update)
    remove_stale_temporaries(*paths)
    temporaries = [temporary_name(p) for p in paths]
    try:
        try:
            yield temporaries
        except OSError as exc:
            named = next((p for p, t in zip(paths, temporaries) if exc.filename in (str(t), t)), None)
            raise _cannot_write(named or " or ".join(map(str, paths)), exc) from None
        for path in paths:  # the outputs may have changed (or been read) while we wrote
            check_output(path, force, update)
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


@contextmanager
def writing(path):
    """Around the writing of one file: an OSError that does not say which file failed (a full disk on
    write or flush) is told ``path``, so that :func:`staged` blames the right output."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def write_bytes(path, data: bytes, force: bool = True, update: bool = False):
    """``data`` to ``path`` through a temporary file and a rename (the whole file or nothing); ``update`` as
    :func:`check_output`."""
    with staged([path], force=force, update=update) as (tmp,), writing(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text: str, force: bool = True, update: bool = False):
    write_bytes(path, text.encode(), force=force, update=update)
