"""What every model file format shares: the path `save` writes and `load` reads, and the
atomic write (a temporary file beside the target, renamed over it) with the clean-up of
the temporary files that killed saves leave behind."""

import contextlib
import os
import re
import secrets
import time

TEMP_PREFIX = ".pycnn-save-"
# this version's names and mkstemp's (older pycnn), for every format
_TEMP_NAME = re.compile(r"\.pycnn-save-[A-Za-z0-9_]{1,32}\.(?:npz|safetensors)\Z")
_STALE_SECONDS = 3600


def atomic_write(path, suffix, write):
    """Call ``write(f)`` on a new binary file beside `path`, flush it to disk, then
    rename it over `path`; on any error remove it and re-raise."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}{suffix}")
    # os.open applies the umask to 0o666, as open() does; mkstemp would give 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temporaries(folder):
    """Remove the temporary files of killed saves: regular files of this user named like
    save's, last modified more than an hour ago. Errors are ignored (a save running in
    another process may remove the same file)."""
    now = time.time()
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if (
                entry.is_file(follow_symlinks=False)
                and now - st.st_mtime > _STALE_SECONDS
                and (uid is None or st.st_uid == uid)
            ):
                os.unlink(entry.path)
        except OSError:
            pass


def model_file(path, suffix):
    """The file `save(path)` wrote: `path`, else `path` + `suffix` when it lacks it."""
    path = os.fsdecode(os.fspath(path))
    candidates = [path] if path.endswith(suffix) else [path, path + suffix]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    for candidate in candidates:
        if os.path.exists(candidate):
            what = "a directory" if os.path.isdir(candidate) else "a device, pipe or socket"
            raise ValueError(
                f"`path` must be {'an' if suffix == '.npz' else 'a'} {suffix} file "
                f"written by Sequential.save, "
                f"not {what}. Received: path={candidate!r}"
            )
    raise FileNotFoundError(
        f"`path` names no file: {' nor '.join(map(repr, candidates))} exists"
    )


def state_of(model_or_state):
    """The ``{key: array}`` of a model (anything with `state_dict()`) or a state dict."""
    state_dict = getattr(model_or_state, "state_dict", None)
    return state_dict() if callable(state_dict) else model_or_state
