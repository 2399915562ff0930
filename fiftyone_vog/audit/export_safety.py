"""Where an export may write, and what *Overwrite* may replace.

An export writes a marker file, :data:`MARKER`, at the top of its directory listing every file
and folder it wrote. *Overwrite* replaces a directory only when everything in it is listed
there: the files an earlier export of ours wrote. It never removes anything else: a directory
without our marker that holds files, or one where files were added since, is refused (choose an
empty or new directory). Whatever ``overwrite`` says, an export is refused into

- a filesystem root, the home directory or one of its ancestors, the working directory or one
  of its ancestors;
- a directory that holds, or lies above, media of the dataset;
- a symbolic link (an export never follows a link out of the directory it was given).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid

from ..errors import VoGError, check_no_nul

MARKER = ".fiftyone-vog-export.json"
MARKER_KIND = "fiftyone-vog export"
FIX = "choose an empty or new directory"


def _norm(path) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def _is_within(path: str, parent: str) -> bool:
    """``path`` is ``parent`` or below it (both normalized absolute paths)."""
    try:
        return os.path.commonpath([path, parent]) == parent
    except ValueError:  # different drives
        return False


def _forms(path: str) -> set[str]:
    """The path as given and with its links resolved."""
    return {path, os.path.realpath(path)}


def _protected(path: str) -> str | None:
    """Why ``path`` (normalized) may never be an export directory, or None."""
    home = _norm("~")
    cwd = os.getcwd()
    for p in _forms(path):
        if os.path.dirname(p) == p:
            return "is a filesystem root"
        for name, place in (("the home directory", home), ("the working directory", cwd)):
            for q in _forms(place):
                if p == q:
                    return f"is {name}"
                if _is_within(q, p):
                    return f"holds {name} ({q})"
    return None


def media_dirs(samples) -> set[str]:
    """The folders holding the media of the whole dataset behind ``samples``, as given and resolved."""
    ds = samples._dataset
    dirs = {os.path.dirname(fp) for fp in ds.values("filepath") if fp and "://" not in fp}
    out = set()
    for d in dirs:
        out |= _forms(_norm(d))
    return out


def _holds_media(path: str, dirs: set[str]) -> str | None:
    for p in _forms(path):
        for d in dirs:
            if _is_within(d, p):
                return d
    return None


def read_marker(export_dir: str) -> dict | None:
    """Our marker in ``export_dir``, or None when absent or not ours."""
    path = os.path.join(export_dir, MARKER)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MARKER_KIND:
        return None
    files, dirs = data.get("files"), data.get("dirs")
    if not isinstance(files, list) or not isinstance(dirs, list):
        return None
    return data


def _safe_rel(rel) -> bool:
    """A relative path that stays inside its directory (a marker may have been edited)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel):
        return False
    parts = rel.split("/")
    return all(p not in ("", ".", "..") for p in parts)


def _inventory(root: str) -> tuple[set[str], set[str], set[str]]:
    """Files, folders and links below ``root`` as relative ``/``-separated paths (links not followed)."""
    files, dirs, links = set(), set(), set()
    for cur, dnames, fnames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(cur, root)
        for name in dnames + fnames:
            rel = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
            full = os.path.join(cur, name)
            if os.path.islink(full):
                links.add(rel)
            elif name in dnames:
                dirs.add(rel)
            else:
                files.add(rel)
    return files, dirs, links


def _extra(export_dir: str, marker: dict) -> str | None:
    """The first thing in ``export_dir`` our marker does not list, or None."""
    listed_files = {f for f in marker["files"] if _safe_rel(f)}
    listed_dirs = {d for d in marker["dirs"] if _safe_rel(d)}
    files, dirs, links = _inventory(export_dir)
    files.discard(MARKER)
    for rel in sorted(files - listed_files) + sorted(dirs - listed_dirs) + sorted(links - listed_files):
        return rel
    return None


def check_export_dir(export_dir, samples=None, overwrite: bool = False) -> str:
    """The normalized export directory, or :class:`VoGError` saying why it is refused."""
    path = _norm(check_no_nul(export_dir, "export_dir"))
    why = _protected(path)
    if why:
        raise VoGError(f"export_dir {path} {why}; an export never replaces it: {FIX}")
    if os.path.islink(path):
        raise VoGError(
            f"export_dir {path} is a symbolic link (to {os.path.realpath(path)}); exports do not follow links: {FIX}"
        )
    if os.path.lexists(path) and not os.path.isdir(path):
        raise VoGError(f"export_dir {path} is a file; {FIX}")
    if samples is not None and os.path.lexists(path):  # a new directory holds nothing (and typing stays fast)
        d = _holds_media(path, media_dirs(samples))
        if d:
            raise VoGError(
                f"export_dir {path} holds media of the dataset ({d}); an export never replaces "
                f"them: {FIX} outside the media folders"
            )
    if os.path.isdir(path) and os.listdir(path):
        marker = read_marker(path)
        if marker is None:
            raise VoGError(
                f"export_dir {path} already holds files that no fiftyone-vog export wrote (no {MARKER}); {FIX}"
            )
        if not overwrite:
            raise VoGError(
                f"export_dir {path} already holds files; {FIX}, or pass overwrite=True "
                f"(CLI: --overwrite) to replace what the earlier export wrote there"
            )
        extra = _extra(path, marker)
        if extra:
            raise VoGError(
                f"export_dir {path} holds {extra!r}, which the earlier export did not write; "
                f"Overwrite replaces only an export's own files: move it away or {FIX}"
            )
    return path


def write_marker(tmp: str, info: dict) -> None:
    """List everything below ``tmp`` (the finished export) in its marker, written last."""
    files, dirs, links = _inventory(tmp)
    data = dict(
        kind=MARKER_KIND,
        version=1,
        written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        files=sorted(files | links),
        dirs=sorted(dirs),
    )
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _remove_listed(old: str, marker: dict) -> list[str]:
    """Remove what ``marker`` lists from ``old`` (files, then emptied folders); returns what is left."""
    root = os.path.realpath(old)
    for rel in marker["files"] + [MARKER]:
        if not _safe_rel(rel):
            continue
        full = os.path.join(old, *rel.split("/"))
        if not _is_within(os.path.realpath(os.path.dirname(full)), root):  # a folder became a link
            continue
        if os.path.islink(full) or os.path.isfile(full):
            os.unlink(full)  # a link itself, never its target
    for rel in sorted((d for d in marker["dirs"] if _safe_rel(d)), key=lambda d: -d.count("/")):
        full = os.path.join(old, *rel.split("/"))
        if os.path.isdir(full) and not os.path.islink(full):
            try:
                os.rmdir(full)
            except OSError:
                pass
    left = os.listdir(old)
    if not left:
        os.rmdir(old)
    return left


def replace_dir(tmp: str, export_dir: str) -> str | None:
    """Move the finished export ``tmp`` to ``export_dir`` (re-checked just before).

    ``export_dir`` is absent, empty, or holds only what our marker lists (checked by
    :func:`check_export_dir`; checked again here). Returns a warning when something appeared in
    the old export while it was replaced (it is kept, in a sibling folder named in the warning).
    """
    if not os.path.lexists(export_dir):
        os.rename(tmp, export_dir)
        return None
    if os.path.islink(export_dir) or not os.path.isdir(export_dir):
        raise VoGError(f"export_dir {export_dir} changed during the export; nothing was replaced")
    if not os.listdir(export_dir):
        os.rmdir(export_dir)
        os.rename(tmp, export_dir)
        return None
    marker = read_marker(export_dir)
    if marker is None or _extra(export_dir, marker):
        raise VoGError(
            f"export_dir {export_dir} changed during the export (files were added); nothing was replaced: {FIX}"
        )
    parent, base = os.path.split(export_dir)
    old = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex[:12]}")
    os.rename(export_dir, old)
    try:
        os.rename(tmp, export_dir)
    except BaseException:
        os.rename(old, export_dir)
        raise
    left = _remove_listed(old, marker)
    if left:
        return f"files added to {export_dir} during the export were kept in {old}: {', '.join(sorted(left)[:3])}"
    return None


def describe_os_error(e: OSError, export_dir: str) -> str:
    """One line for a failed write: what happened and what to do."""
    what = e.strerror or type(e).__name__
    code = errno.errorcode.get(e.errno, "") if e.errno else ""
    fix = {
        errno.ENOSPC: "free some space or choose a directory on another disk",
        errno.EDQUOT: "free some space or choose a directory on another disk",
        errno.EFBIG: "the file system or a limit refused a file this large; choose another directory",
        errno.EACCES: "choose a directory you may write to",
        errno.EPERM: "choose a directory you may write to",
        errno.EROFS: "the file system is read-only; choose another directory",
    }.get(e.errno, FIX)
    return (
        f"cannot write the export to {export_dir}: {what}{f' ({code})' if code else ''}; {fix}. "
        f"Nothing was changed there"
    )


def remove_partial(tmp: str) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
