"""Where an export may write, how it is put in place, and what *Overwrite* may replace.

The ownership record (:mod:`fiftyone_vog.core.ownership`) decides, nothing else: every file and
folder an export writes is recorded there (owner ``export:<id>``, with the dataset and the export
directory), and Overwrite removes only what the record lists for that directory and is still
unchanged — never a file that changed, was replaced (same name, another inode) or has another
hard link, never anything added. The marker :data:`MARKER` at the top of an export says what it
is (dataset, type, count, the export's id, its files); it is information, and licenses nothing: a
marker is a file anyone can write.

How an export is put in place (:func:`stage`, :func:`commit`, :func:`abandon`):

- the export directory is created if absent (with its missing parents); an existing one is kept
  as it is — same inode, mode, owner, group — and written into, never removed or replaced;
- the export is built in a hidden folder inside it, :data:`PARTIAL_PREFIX` + id, recorded with the
  time it was made; what is written into it after that is the export's;
- complete, it is checked against the directory before anything is removed: a name it needs that
  holds something fiftyone-vog did not write refuses it; then Overwrite removes the earlier
  export's files, the new entries are recorded and moved in, the hidden folder is removed;
- a failure removes what this export wrote, and the directory if it made it.

Whatever ``overwrite`` says, an export is refused into a filesystem root, the home or working
directory or an ancestor of either, a directory that holds media of any dataset in the database
(as given or with links resolved), a symbolic link, a non-empty directory the record lists no
export in — and an export whose marker remains but whose record does not.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass

from ..core import ownership as own
from ..errors import VoGError, check_path_text

MARKER = ".fiftyone-vog-export.json"
MARKER_KIND = "fiftyone-vog export"
PARTIAL_PREFIX = ".fiftyone-vog-partial-"
BUILD = "export"  # the folder inside the hidden one that the exporter creates and fills
FIX = "choose an empty or new directory"


def _norm(path) -> str:
    """Absolute, as the OS resolves it: see :func:`~fiftyone_vog.core.ownership.export_dir_name`."""
    return own.export_dir_name(os.path.expanduser(str(path)))


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
    places = [("the home directory", _norm("~"))]
    try:
        places.append(("the working directory", os.getcwd()))
    except FileNotFoundError:  # removed under this process by another one: nothing there to protect
        pass
    for p in _forms(path):
        if os.path.dirname(p) == p:
            return "is a filesystem root"
        for name, place in places:
            for q in _forms(place):
                if p == q:
                    return f"is {name}"
                if _is_within(q, p):
                    return f"holds {name} ({q})"
    return None


def media_under(path: str) -> tuple[str, str] | None:
    """``(dataset name, filepath)`` of a sample of any dataset in the database whose media lies
    in or below ``path`` (as given or with its links resolved), or None. One ranged query on
    the ``filepath`` index per dataset."""
    import fiftyone.core.odm as foo

    db = foo.get_db_conn()
    prefixes = sorted({p.rstrip(os.sep) + os.sep for p in _forms(path)})
    for d in db.datasets.find({}, {"name": True, "sample_collection_name": True}):
        coll = db[d["sample_collection_name"]]
        for pre in prefixes:
            hit = coll.find_one({"filepath": {"$gte": pre, "$lt": pre[:-1] + chr(ord(os.sep) + 1)}}, {"filepath": 1})
            if hit:
                return d["name"], hit["filepath"]
    return None


def read_marker(export_dir: str) -> dict | None:
    """Our marker in ``export_dir`` (information only), or None when absent or not one of ours."""
    path = os.path.join(export_dir, MARKER)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == MARKER_KIND else None


def _inventory(root: str, skip=()) -> tuple[set[str], set[str], set[str]]:
    """Files, folders and links below ``root`` as relative paths (links not followed; the
    top-level names in ``skip`` and what they hold left out; an unreadable folder's content too,
    as ``os.walk`` does). One ``scandir`` per folder."""
    files, dirs, links = set(), set(), set()
    todo = [("", root)]
    while todo:
        rel_dir, cur = todo.pop()
        try:
            it = os.scandir(cur)
        except OSError:
            continue
        with it:
            for e in it:
                if not rel_dir and e.name in skip:
                    continue
                rel = os.path.join(rel_dir, e.name) if rel_dir else e.name
                if e.is_symlink():
                    links.add(rel)
                elif e.is_dir(follow_symlinks=False):
                    dirs.add(rel)
                    todo.append((rel, e.path))
                else:
                    files.add(rel)
    return files, dirs, links


def check_export_dir(export_dir, samples=None, overwrite: bool = False) -> str:
    """The normalized export directory, or :class:`VoGError` saying why it is refused.
    (``samples``: kept for callers; the media of every dataset are checked.)"""
    path = _norm(check_path_text("export_dir", export_dir))
    why = _protected(path)
    if why:
        raise VoGError(f"export_dir {path} {why}; an export never replaces it: {FIX}")
    if os.path.islink(path):
        raise VoGError(
            f"export_dir {path} is a symbolic link (to {os.path.realpath(path)}); exports do not follow links: {FIX}"
        )
    if os.path.lexists(path) and not os.path.isdir(path):
        raise VoGError(f"export_dir {path} is a file; {FIX}")
    if os.path.isdir(path) and os.listdir(path):  # a new or empty directory holds nothing (and typing stays fast)
        hit = media_under(path)
        if hit:
            raise VoGError(
                f"export_dir {path} holds media of the dataset {hit[0]!r} ({hit[1]}); an export never "
                f"replaces a dataset's media: {FIX} outside the media folders"
            )
        if not own.wrote_into(path):
            if read_marker(path) is not None:
                raise VoGError(
                    f"export_dir {path} holds an export that fiftyone-vog's record does not list, only its "
                    f"{MARKER} (written before the record existed, or its dataset was deleted); a marker is a "
                    f"file anyone can write, so Overwrite never trusts one: delete that export yourself, or {FIX}"
                )
            raise VoGError(f"export_dir {path} already holds files that no fiftyone-vog export wrote; {FIX}")
        if not overwrite:
            raise VoGError(
                f"export_dir {path} already holds files; {FIX}, or pass overwrite=True "
                f"(CLI: --overwrite) to replace what the earlier export wrote there"
            )
    return path


# -- putting an export in place ------------------------------------------------------------------
@dataclass
class Staging:
    """An export being written: its directory (as the record names it), the hidden folder it is
    built in, and ``build``, the folder inside that the exporter creates and fills."""

    path: str
    partial: own.Entry
    owner: str
    dataset: object
    created: bool

    @property
    def build(self) -> str:
        return os.path.join(self.partial.name, BUILD)


def stage(export_dir: str, dataset) -> Staging:
    """Make (if absent) and record the export directory and the hidden folder to build in."""
    path = own.export_dir_name(export_dir)
    owner = own.export_owner()
    created = False
    if not os.path.isdir(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)  # missing parents only: an existing one is left as it is
        try:
            os.mkdir(path)
            created = True
        except FileExistsError:  # made meanwhile by someone else: theirs, written into like any other
            if not os.path.isdir(path) or os.path.islink(path):
                raise
        if created:
            own.record_export([(path, path)], owner, path, dataset, own.ROOT)
    partial = os.path.join(path, PARTIAL_PREFIX + owner.partition(":")[2][:12])
    os.mkdir(partial)  # not mkdtemp: its 0700 mode would stick to the export's folders
    (entry,) = own.record_export([(partial, partial)], owner, path, dataset, own.PARTIAL)
    return Staging(path, entry, owner, dataset, created)


def write_marker(build: str, info: dict, inventory) -> None:
    """List ``inventory`` (everything in ``build``, the finished export) in its marker, written last."""
    files, dirs, links = inventory
    data = dict(
        kind=MARKER_KIND,
        version=2,
        written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        note="information only: Overwrite removes what fiftyone-vog's ownership record lists, never what this says",
        files=sorted(r.replace(os.sep, "/") for r in files | links),
        dirs=sorted(r.replace(os.sep, "/") for r in dirs),
    )
    with open(os.path.join(build, MARKER), "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _ancestors(rels) -> set[str]:
    out = set()
    for r in rels:
        r = os.path.dirname(r)
        while r and r not in out:
            out.add(r)
            r = os.path.dirname(r)
    return out


def _top(rels) -> list[str]:
    """The paths of ``rels`` not below another of them, sorted."""
    rels = set(rels)
    return sorted(r for r in rels if not (_ancestors([r]) & rels))


def _leaves(rels) -> list[str]:
    """The paths of ``rels`` with none of them below, sorted (folders kept only for what they hold go)."""
    rels = set(rels)
    return sorted(rels - _ancestors(rels))


def _named(paths, limit: int = 5) -> str:
    paths = list(paths)
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(repr(p) for p in paths[:limit]) + more


def _clash_message(path: str, rel: str) -> str:
    return (
        f"export_dir {path} holds {rel!r}, which fiftyone-vog did not write (or it changed since), where this "
        f"export writes; an export never replaces it: move it away or {FIX}"
    )


def commit(st: Staging, overwrite: bool, info: dict) -> str | None:
    """Put the finished export (in ``st.build``) in place; returns a warning naming what was
    kept in the directory (not written by fiftyone-vog, or changed since), or None.

    Checked before anything is removed: every name the export needs is free, or holds a file of
    an earlier export there (recorded and unchanged; removed), or a folder (written into).
    Anything else refuses it with :class:`VoGError` and nothing is changed."""
    built = _inventory(st.build)
    write_marker(st.build, {**info, "export_id": st.owner.partition(":")[2]}, built)
    new_files, new_dirs = own.written_since(st.build, st.partial.options["since"])
    earlier = [e for e in own.written_into(st.path) if e.owner != st.owner]
    old_partials = [e for e in earlier if e.role == own.PARTIAL]
    # an earlier export's entries; a file with another hard link is kept, as anything not ours
    rel = {os.path.relpath(e.name, st.path): e for e in earlier if e.role is None and _single(e)}
    skip = {os.path.basename(st.partial.name)} | {os.path.basename(e.name) for e in old_partials}
    files, dirs, links = _inventory(st.path, skip)
    present = files | dirs | links
    foreign = present - set(rel)
    if not overwrite and (rel or foreign):
        raise VoGError(
            f"export_dir {st.path} changed during the export (files were added); nothing was replaced: {FIX}"
        )
    hit = media_under(st.path)
    if hit:
        raise VoGError(
            f"export_dir {st.path} holds media of the dataset {hit[0]!r} ({hit[1]}); an export never replaces "
            f"a dataset's media: {FIX} outside the media folders"
        )
    held = _ancestors(foreign)  # our earlier folders that keep something not ours: never emptied

    def clash(r: str, is_dir: bool) -> bool:
        if r not in present or (r in rel and rel[r].kind == own.FILE):
            return False
        if r in dirs:
            return not is_dir and (r in held or r not in rel)
        return True

    for r in sorted(new_dirs) + sorted(new_files):
        if clash(r, r in new_dirs):
            raise VoGError(_clash_message(st.path, r))
    kept = own.remove_paths(rel.values())
    for e in old_partials:  # left by an export that was killed
        foreign |= set(_leaves(os.path.join(os.path.basename(e.name), r) for r in own.remove_partial(e)))
    _move_in(st, new_files, new_dirs, set().union(*built) | {MARKER})
    left = [os.path.join(os.path.basename(st.partial.name), r) for r in own.remove_partial(st.partial)]
    named = _top(foreign) + _leaves(left) + sorted(os.path.relpath(e.name, st.path) for e in kept if e.kind == own.FILE)
    if not named:
        return None
    return f"Overwrite kept in {st.path} what fiftyone-vog did not write (or that changed since): {_named(named)}"


def _single(e: own.Entry) -> bool:
    """A folder, or a file with no other hard link."""
    try:
        return e.kind == own.DIR or os.lstat(e.name).st_nlink == 1
    except OSError:
        return False


def _move_in(st: Staging, new_files: set[str], new_dirs: set[str], built: set[str]) -> None:
    """Record the new entries under their final names, then move them from the build folder
    (``built``: all it holds) into the export directory: a folder whose name is free (and that
    holds only the export's) whole, by rename; into a folder already there, entry by entry.
    Never over anything."""
    ours = new_files | new_dirs
    not_ours = _ancestors(built - ours)  # build folders holding something else
    children: dict[str, list[str]] = {}
    for r in sorted(ours):
        children.setdefault(os.path.dirname(r), []).append(r)

    def subtree(r):
        out = [r]
        for k in children.get(r, ()):
            out += subtree(k)
        return out

    moves, made, pairs = [], [], []
    stack = list(reversed(children.get("", [])))
    while stack:
        r = stack.pop()
        dest = os.path.join(st.path, r)
        into = os.path.lexists(dest)
        if into and not (r in new_dirs and os.path.isdir(dest) and not os.path.islink(dest)):
            raise VoGError(_clash_message(st.path, r) + "; the earlier export was removed, this one is not in place")
        if into or r in not_ours:  # a folder there already, or one to leave something behind in: entry by entry
            if not into:
                made.append(r)
            stack.extend(reversed(children.get(r, [])))
            continue
        moves.append(r)
        pairs += [(os.path.join(st.path, k), os.path.join(st.build, k)) for k in subtree(r)]
    own.record_export(pairs, st.owner, st.path, st.dataset)
    for r in sorted(made + moves, key=lambda x: (x.count(os.sep), x)):  # a made folder before what goes in it
        if r in made:
            os.mkdir(os.path.join(st.path, r))
        else:
            _place(os.path.join(st.build, r), os.path.join(st.path, r), st.path, r)
    own.record_export([(os.path.join(st.path, r),) * 2 for r in made], st.owner, st.path, st.dataset)


def _place(src: str, dest: str, path: str, rel: str) -> None:
    """Move ``src`` to the free name ``dest``; a file by link + unlink, which never replaces
    anything that appeared there meanwhile."""
    if os.path.isdir(src) and not os.path.islink(src):
        if os.path.lexists(dest):
            raise VoGError(_clash_message(path, rel))
        os.rename(src, dest)
        return
    try:
        os.link(src, dest, follow_symlinks=False)
    except FileExistsError:
        raise VoGError(_clash_message(path, rel)) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(dest):
            raise VoGError(_clash_message(path, rel)) from None
        os.rename(src, dest)
        return
    os.unlink(src)


def abandon(st: Staging) -> str | None:
    """After a failure: remove what this export wrote (recorded, unchanged), its hidden folder
    with what was written into it, and the directory if this export made it and it is empty.
    Returns a note naming what was kept, or None."""
    mine = [e for e in own.written_into(st.path, st.owner) if e.role is None]
    kept = [os.path.relpath(e.name, st.path) for e in own.remove_paths(mine) if e.kind == own.FILE]
    partial = os.path.basename(st.partial.name)
    try:
        kept += _leaves(os.path.join(partial, r) for r in own.remove_partial(st.partial))
    except VoGError:  # the hidden folder changed: left as it is
        kept.append(partial)
    if st.created and os.path.isdir(st.path) and not os.listdir(st.path):
        own.remove_dir(st.path, st.owner, st.dataset)
    elif st.created:  # what appeared in the directory this export made
        kept += [r for r in _top(set().union(*_inventory(st.path, {partial}))) if r not in kept]
    if not kept:
        return None
    return f"kept in {st.path}, not written by this export (or changed since): {_named(kept)}"


def describe_os_error(e: OSError, export_dir: str, kept: str | None = None) -> str:
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
    done = f"Nothing it wrote was left there; {kept}" if kept else "Nothing was changed there"
    return f"cannot write the export to {export_dir}: {what}{f' ({code})' if code else ''}; {fix}. {done}"
