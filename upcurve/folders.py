"""Folders upcurve writes: whole or not at all, and replaced or removed only when upcurve provably wrote them.

Every folder upcurve writes (a run's results, a simulated company, a saved model, an export) is filled in a
hidden staging folder beside its destination and then swapped into place in one step. It carries a manifest,
``.upcurve-manifest.json``, listing every file it holds with its size and SHA-256. That manifest is the proof of
ownership: a destination may be replaced only when it is empty, or when everything in it is listed in its manifest
and unchanged since upcurve wrote it. A folder holding anything else (a user's file, an edited result) is refused,
never deleted.

The swap is atomic on Linux (``renameat2`` with ``RENAME_EXCHANGE``: the destination is always either the old
folder or the new one, whole). Elsewhere it takes two renames; a crash between them is repaired by the next write
to the same destination, which restores the previous folder from its hidden copy. Staging folders left by a
process that was killed are removed by the next write beside them, once their owner is provably gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from upcurve import __version__
from upcurve.errors import UpcurveError

__all__ = [
    "MANIFEST",
    "OutputError",
    "check_destination",
    "file_digest",
    "folder_manifest",
    "read_verified",
    "write_folder",
]

#: The manifest every folder upcurve writes carries: what it wrote, file by file.
MANIFEST = ".upcurve-manifest.json"
#: Inside a staging folder while it is being filled: proves the folder is upcurve's half-written work.
_STAGING_MARK = ".upcurve-staging"
#: The results manifest of upcurve 0.1 (no checksums): accepted as proof when the folder holds exactly its files.
_LEGACY_MANIFEST = "run.json"
_NEW, _OLD = "upcurve-new", "upcurve-old"


class OutputError(UpcurveError, OSError):
    """A folder cannot be written or replaced safely; the message names it and says what to do."""


def file_digest(path: Path) -> dict[str, Any]:
    """The size and SHA-256 of a file, as the manifest records them."""
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def _relative_files(folder: Path) -> tuple[list[str], list[str]]:
    """Every file below ``folder`` (relative, POSIX) and every entry that is not a plain file or folder."""
    files: list[str] = []
    odd: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in dirs:
            if (base / name).is_symlink():
                odd.append((base / name).relative_to(folder).as_posix())
        for name in names:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            (files if path.is_file() and not path.is_symlink() else odd).append(rel)
    return sorted(files), sorted(odd)


def folder_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a folder upcurve wrote, or None when it has none (or it is not readable JSON)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "upcurve" or not isinstance(data.get("files"), dict):
        return None
    return data


def _foreign_entries(folder: Path) -> tuple[list[str], str]:
    """What in ``folder`` upcurve cannot prove it wrote, and how it knows what it did write.

    Returns the foreign entries (empty when every entry is upcurve's and unchanged) and a short word on the proof.
    """
    files, odd = _relative_files(folder)
    manifest = folder_manifest(folder)
    if manifest is not None:
        listed = manifest["files"]
        foreign = [f for f in files if f != MANIFEST and f not in listed]
        for name, digest in listed.items():
            path = folder / name
            if name in files and isinstance(digest, dict) and file_digest(path) != {
                "bytes": digest.get("bytes"), "sha256": digest.get("sha256")
            }:
                foreign.append(f"{name} (changed since upcurve wrote it)")
        return sorted(foreign + odd), "manifest"
    legacy = _legacy_files(folder)
    if legacy is not None:
        return sorted([f for f in files if f not in legacy] + odd), "run.json"
    return sorted(files + odd), "none"


def _legacy_files(folder: Path) -> set[str] | None:
    """The files an upcurve 0.1 results folder listed in its ``run.json``, if it is one."""
    try:
        data = json.loads((folder / _LEGACY_MANIFEST).read_text(encoding="utf-8"))
        tables = data["tables"]
        files = {str(info["file"]) for info in tables.values()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if "upcurve" not in data or any("/" in f or f.startswith(".") for f in files):
        return None
    return files | {_LEGACY_MANIFEST}


def _listing(entries: list[str], most: int = 5) -> str:
    shown = ", ".join(entries[:most])
    return shown + (f" and {len(entries) - most} more" if len(entries) > most else "")


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_destination(dest: str | Path, *, inputs: Iterable[str | Path] = (), what: str = "output") -> Path:
    """The resolved destination, after checking that upcurve may write it; raises :class:`OutputError` if not.

    A destination may be written when it does not exist yet, is an empty folder, or is a folder upcurve wrote
    (everything in it listed in its manifest, unchanged). It must not be, hold or lie inside any of ``inputs``
    (the data a command reads), and its parent must be writable. Called before anything is computed, so a wrong
    option costs nothing, and again just before the swap.

    An existing folder is read under the lock every swap holds: another upcurve process replacing it meanwhile
    would otherwise show this check its old manifest beside its new files, each then "changed since upcurve wrote
    it" (two processes saving a model into one folder were refused so).
    """
    out = Path(dest).expanduser().resolve()
    if out.exists() and out.parent.is_dir():
        with _locked(out.parent):
            return _checked_destination(out, inputs=inputs, what=what)
    return _checked_destination(out, inputs=inputs, what=what)


def _checked_destination(out: Path, *, inputs: Iterable[str | Path], what: str) -> Path:
    """:func:`check_destination` on a resolved path, the caller holding the lock when the folder exists."""
    for source in inputs:
        src = Path(source).expanduser().resolve()
        if _within(out, src) or _within(src, out):
            relation = "is" if out == src else "holds" if _within(src, out) else "lies inside"
            raise OutputError(f"the {what} folder {out} {relation} the input {src}: upcurve never writes into its "
                              "input; choose a folder outside it")
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder; choose a new or empty folder for the {what}")
        foreign, proof = _foreign_entries(out)
        if foreign:
            why = ("it holds files upcurve did not write" if proof == "none"
                   else "besides what upcurve wrote, it holds")
            raise OutputError(f"{out} cannot be replaced: {why}: {_listing(foreign)}. upcurve only replaces a "
                              f"folder it wrote itself; choose a new or empty folder for the {what}, or move "
                              "those files away")
    parent = _existing_parent(out)
    if not parent.is_dir():
        raise OutputError(f"cannot write the {what} to {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {what} to {out}: {parent} is not writable")
    return out


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two upcurve processes never swap beside each other at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS: no lock, the swap is still whole
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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


def _leftovers(out: Path, kind: str) -> list[tuple[Path, int]]:
    """Hidden folders beside ``out`` from an earlier write to it (``kind``: new or old), with the pid that made
    them."""
    prefix = f".{out.name}.{kind}-"
    found = []
    for path in out.parent.glob(f".{out.name}.{kind}-*"):
        pid_text = path.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and path.is_dir() and not path.is_symlink():
            found.append((path, int(pid_text)))
    return found


def _ours(folder: Path) -> bool:
    """True when ``folder`` is provably upcurve's: a staging folder (marked) or a folder matching its manifest."""
    if (folder / _STAGING_MARK).is_file():
        return True
    foreign, proof = _foreign_entries(folder)
    return proof != "none" and not foreign


def _remove_ours(folder: Path) -> None:
    """Remove a folder upcurve wrote, its manifest and staging mark last: a removal killed half-way leaves a folder
    still provably upcurve's, which the next write finishes removing."""
    proofs = {MANIFEST, _STAGING_MARK}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name in proofs):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _recover(out: Path) -> None:
    """Repair what a killed write to ``out`` left behind (call with the parent locked).

    If ``out`` is missing and a previous folder was moved aside by an interrupted two-rename swap, it is put back.
    Staging and set-aside folders of processes that no longer run are removed when they are provably upcurve's, or
    empty (a write killed between making its staging folder and marking it); anything else is left where it is.
    """
    old = [(p, pid) for p, pid in _leftovers(out, _OLD) if not _pid_alive(pid)]
    if not out.exists() and not out.is_symlink():
        for path, _ in sorted(old, key=lambda item: item[0].stat().st_mtime, reverse=True):
            if _ours(path):
                path.rename(out)
                old = [(p, pid) for p, pid in old if p != path]
                break
    for path, pid in [*old, *_leftovers(out, _NEW)]:
        if not _pid_alive(pid) and path.exists() and _ours(path):
            _remove_ours(path)
        elif not _pid_alive(pid) and path.exists():
            # a staging folder made by a write killed before it could mark it: empty, so removing it deletes
            # nothing (rmdir refuses a folder that holds anything)
            with contextlib.suppress(OSError):
                path.rmdir()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where that is not
    available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sealed(stage: Path, kind: str, info: Mapping[str, Any] | None) -> None:
    """Write the manifest of everything in ``stage`` (each file synced to disk), then drop the staging mark."""
    files, odd = _relative_files(stage)
    if odd:
        raise OutputError(f"upcurve wrote links or special files into {stage}: {_listing(odd)}")
    digests = {}
    for rel in files:
        if rel == _STAGING_MARK:
            continue
        path = stage / rel
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
        digests[rel] = file_digest(path)
    manifest = {"written_by": "upcurve", "upcurve": __version__, "kind": kind,
                "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **(info or {}),
                "files": digests}
    path = stage / MANIFEST
    with path.open("w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    (stage / _STAGING_MARK).unlink()
    for root, _dirs, _names in os.walk(stage):
        _fsync_dir(Path(root))


def write_folder(
    dest: str | Path,
    fill: Callable[[Path], object],
    *,
    kind: str,
    inputs: Iterable[str | Path] = (),
    info: Mapping[str, Any] | None = None,
    what: str = "output",
) -> Path:
    """Write a folder whole: ``fill(stage)`` writes its files into a staging folder, which then takes the place of
    ``dest`` in one step.

    ``kind`` names what the folder holds (``results``, ``simulation``, ``model``, ``export``); ``info`` is stored in
    the manifest beside the file list. If ``fill`` raises, or the process dies, ``dest`` is as it was.

    Raises
    ------
    OutputError
        When ``dest`` holds anything upcurve did not write, lies inside or holds an input, or cannot be written.
    """
    inputs = list(inputs)
    out = check_destination(dest, inputs=inputs, what=what)
    try:
        return _write_folder(out, fill, kind=kind, inputs=inputs, info=info, what=what)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"could not write the {what} to {out}: {exc.strerror or exc}"
                          f"{f' ({exc.filename})' if exc.filename else ''}; the folder is as it was") from None


def _write_folder(out: Path, fill: Callable[[Path], object], *, kind: str, inputs: list[str | Path],
                  info: Mapping[str, Any] | None, what: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent):
        _recover(out)
    stage = out.parent / f".{out.name}.{_NEW}-{os.getpid()}-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        (stage / _STAGING_MARK).write_text(json.dumps({"pid": os.getpid(), "dest": str(out)}))
        fill(stage)
        _sealed(stage, kind, info)
        with _locked(out.parent):
            _checked_destination(out, inputs=inputs, what=what)  # nothing foreign arrived while we computed
            if not out.exists():
                stage.rename(out)
            elif _exchange(stage, out):
                pass  # ``stage`` now holds the previous folder, removed below
            else:
                aside = out.parent / f".{out.name}.{_OLD}-{os.getpid()}-{secrets.token_hex(4)}"
                out.rename(aside)
                stage.rename(out)
                stage = aside
            _fsync_dir(out.parent)
    finally:
        if stage.exists():
            _remove_ours(stage)
    return out


def read_verified(folder: str | Path, *, kind: str, what: str = "folder") -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every file of a small folder upcurve wrote, read at once and checked against the manifest.

    The files are read through one handle on the folder, so a save that swaps a new folder in meanwhile cannot
    mix files of two saves: what is returned is one folder's, whole, or an error.

    Raises
    ------
    OutputError
        When the folder has no manifest, is of another kind, or a file is missing, added or changed.
    """
    path = Path(folder)
    for attempt in range(3):
        try:
            return _read_verified(path, kind=kind, what=what)
        except FileNotFoundError:
            # the folder was swapped out and removed while it was read: read the one now in its place
            if attempt == 2:
                raise OutputError(f"{path}: the {what} kept changing while it was read; try again") from None
    raise AssertionError("unreachable")


def _replaced(path: Path, fd: int) -> bool:
    """True when ``path`` no longer names the folder open as ``fd`` (a save swapped another in)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def _read_verified(path: Path, *, kind: str, what: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (NotADirectoryError, FileNotFoundError):
        raise OutputError(f"{path}: no {what} here (not a folder)") from None
    try:
        def read(name: str) -> bytes:
            with open(name, "rb", opener=lambda n, flags: os.open(n, flags | os.O_NOFOLLOW, dir_fd=fd)) as fh:
                return fh.read()

        try:
            manifest = json.loads(read(MANIFEST).decode("utf-8"))
        except FileNotFoundError:
            if _replaced(path, fd):
                raise
            raise OutputError(f"{path}: not a {what} written by upcurve (no {MANIFEST}); write it again") from None
        except (UnicodeDecodeError, ValueError):
            raise OutputError(f"{path}: its {MANIFEST} is not readable; write the {what} again") from None
        if not isinstance(manifest, dict) or manifest.get("written_by") != "upcurve" or not isinstance(
                manifest.get("files"), dict):
            raise OutputError(f"{path}: not a {what} written by upcurve; write it again")
        if manifest.get("kind") != kind:
            raise OutputError(f"{path}: holds a {manifest.get('kind')!r} folder, not a {what}")
        listed: dict[str, Any] = manifest["files"]
        present = set(os.listdir(fd))
        problems = [f"{name} was added" for name in sorted(present - set(listed) - {MANIFEST})]
        contents: dict[str, bytes] = {}
        for name, digest in listed.items():
            if "/" in name or name not in present:
                problems.append(f"{name} is missing")
                continue
            data = read(name)
            expected = digest if isinstance(digest, dict) else {}
            if len(data) != expected.get("bytes") or hashlib.sha256(data).hexdigest() != expected.get("sha256"):
                problems.append(f"{name} was changed")
            contents[name] = data
        if problems and _replaced(path, fd):
            raise FileNotFoundError(str(path))  # read the folder that took its place
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise OutputError(f"{path}: the {what} cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if problems:
        raise OutputError(f"{path}: the {what} is not as upcurve wrote it ({_listing(sorted(problems))}); "
                          "it is refused. Write it again")
    return manifest, contents
