"""The one record of what fiftyone-vog wrote, and the only door to deleting, moving or
overwriting it.

Every field, index, saved view, audit flag/backup field and exported file or folder that this
project creates is recorded here as an :class:`Entry` — which dataset, what kind of thing, its
name (a field name, an index name, a saved view's name, a file's real path), its *owner* (the
run or audit that wrote it, e.g. ``run:vog``, ``shuffle:ground_truth``, ``export:<id>``), its
role and the options it was written with. Every destructive step asks :func:`require` (or calls
one of the ``delete_*`` / ``remove_*`` functions below, which ask it) first: what the record
does not list is never touched, whoever asks.

**Storage.** One MongoDB collection, :data:`COLLECTION`, in FiftyOne's database, so every
process and machine that shares the database agrees; a unique index on ``(dataset_id, kind,
name)`` makes a name belong to one owner at a time.

**Identity, not only names.** A record is only believed while the thing it describes is still
the thing this project wrote, so that a user who deletes our field and makes their own of the
same name owns it:

- a field carries a random token in its ``info`` (``info["fiftyone_vog"]["token"]``) equal to
  the record's (FiftyOne keeps a field's ``info`` through renames, clones and reloads);
- a saved view is the saved-view document whose id the record holds (re-saving a view of the
  same name, even with ``overwrite=True``, makes a new document);
- an index is ours while the record lists it and its field is ours;
- a file or folder is the ``(device, inode, size, mtime)`` it had when written (``lstat``: a
  link is itself, never its target); one that changed since is not ours.

An entry whose thing is gone or is no longer the one we wrote is *stale*: it is ignored (and
dropped) — a stale record never makes us delete anything.

**Records of earlier versions.** Datasets written before this record existed carry their own
partial records: a VoG run's ``config.fields``, the shuffle audit's field ``info``. The first
time the record of such a dataset is read, :func:`adopt_legacy` takes those over once (an
``adopted`` mark per dataset says it is done).

Imports neither torch nor (at import time) FiftyOne.
"""

from __future__ import annotations

import datetime as _dt
import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import VoGError

COLLECTION = "fiftyone_vog.ownership"
#: ``info`` key of a field this project wrote (holds the token matching its record).
INFO_KEY = "fiftyone_vog"

FIELD, INDEX, VIEW, FILE, DIR = "field", "index", "view", "file", "dir"
KINDS = (FIELD, INDEX, VIEW, FILE, DIR)
_META = "meta"  # the per-dataset "legacy records adopted" mark
_WHAT = {FIELD: "field", INDEX: "index", VIEW: "saved view", FILE: "file", DIR: "folder"}


# -- owners ----------------------------------------------------------------------------
def run_owner(key: str) -> str:
    """The owner of what the VoG run ``key`` wrote."""
    return f"run:{key}"


def shuffle_owner(label_field: str) -> str:
    """The owner of what the shuffle audit of ``label_field`` wrote."""
    return f"shuffle:{label_field}"


def views_owner(vog_field: str) -> str:
    """The owner of the saved views :func:`fiftyone_vog.save_vog_views` saved over ``vog_field``."""
    return f"views:{vog_field}"


def export_owner(export_id: str | None = None) -> str:
    """The owner of one export's files (a fresh id when none is given)."""
    return f"export:{export_id or uuid.uuid4().hex}"


def describe_owner(owner: str) -> str:
    """``run:vog`` → "the VoG run 'vog'", for messages."""
    kind, _, key = owner.partition(":")
    return {
        "run": f"the VoG run {key!r}",
        "shuffle": f"the shuffle audit of {key!r}",
        "views": f"save_vog_views over {key!r}",
        "export": "a fiftyone-vog export",
    }.get(kind, owner)


@dataclass(frozen=True)
class Entry:
    """One thing this project wrote. ``dataset_id`` is None for files and folders that belong to
    no dataset."""

    kind: str
    name: str
    owner: str
    dataset_id: str | None = None
    role: str | None = None
    options: dict = field(default_factory=dict)


# -- storage -----------------------------------------------------------------------------
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def _coll():
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[COLLECTION]
    coll.create_index([("dataset_id", 1), ("kind", 1), ("name", 1)], unique=True)
    coll.create_index([("dataset_id", 1), ("owner", 1)])
    return coll


def _dsid(dataset) -> str | None:
    return None if dataset is None else str(dataset._root_dataset._doc.id)


def _key(dataset, kind: str, name: str) -> dict:
    return {"dataset_id": _dsid(dataset), "kind": kind, "name": _norm(kind, name)}


def _norm(kind: str, name, parents: dict | None = None) -> str:
    """Files and folders by absolute path with the links *above* them resolved (a link itself is
    recorded as the link, never as its target), as the OS resolves them: a link before any ``..``
    (``a/link/..`` is the folder above the link's target; a lexical ``abspath`` would say ``a``).
    ``parents``: resolved folders, kept across calls."""
    if kind in (FILE, DIR):
        name = os.fspath(name)
        path = (name if os.path.isabs(name) else os.path.join(os.getcwd(), name)).rstrip(os.sep) or os.sep
        head, tail = os.path.split(path)
        if tail in ("", ".", ".."):  # the root, or a name that is no entry of its own
            return os.path.realpath(path)
        if parents is None:
            return os.path.join(os.path.realpath(head), tail)
        if head not in parents:  # one realpath per folder, not per file
            parents[head] = os.path.realpath(head)
        return os.path.join(parents[head], tail)
    return name


def _entry(doc: dict) -> Entry:
    return Entry(
        kind=doc["kind"],
        name=doc["name"],
        owner=doc["owner"],
        dataset_id=doc.get("dataset_id"),
        role=doc.get("role"),
        options=doc.get("options") or {},
    )


# -- identity of the live thing --------------------------------------------------------------
def _field_token(dataset, name: str) -> str | None:
    f = dataset._root_dataset.get_field(name) if name in dataset._root_dataset.get_field_schema() else None
    info = getattr(f, "info", None) or {}
    rec = info.get(INFO_KEY) if isinstance(info, dict) else None
    return rec.get("token") if isinstance(rec, dict) else None


def _stamp_field(dataset, name: str, token: str, owner: str, role: str | None) -> None:
    f = dataset._root_dataset.get_field(name)
    info = dict(getattr(f, "info", None) or {})
    info[INFO_KEY] = {**(info.get(INFO_KEY) or {}), "token": token, "owner": owner, "role": role}
    f.info = info
    f.save()


def _view_id(dataset, name: str) -> str | None:
    for doc in dataset._root_dataset._doc.saved_views:
        if doc.name == name:
            return str(doc.id)
    return None


def _stat(path: str, kind: str) -> list | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return _ident_of(st, kind)


def _ident_of(st: os.stat_result, kind: str) -> list | None:
    """The identity a file (device, inode, size, mtime) or folder (device, inode) is recorded with."""
    if kind == DIR:
        return [st.st_dev, st.st_ino] if stat.S_ISDIR(st.st_mode) else None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _ident(dataset, kind: str, name: str, token: str | None = None):
    """What the live thing is now (compared with the record's), None when it does not exist."""
    if kind == FIELD:
        return _field_token(dataset, name)
    if kind == VIEW:
        return _view_id(dataset, name)
    if kind == INDEX:
        return name if name in dataset._root_dataset.list_indexes() else None
    return _stat(name, kind)


def _valid(dataset, doc: dict) -> bool:
    if doc["kind"] == INDEX:
        ident = _ident(dataset, INDEX, doc["name"])
        field_name = (doc.get("options") or {}).get("field", doc["name"])
        return ident is not None and (field_name not in _schema(dataset) or _believed(dataset, FIELD, field_name))
    return doc.get("ident") is not None and _ident(dataset, doc["kind"], doc["name"]) == doc.get("ident")


def _schema(dataset):
    return dataset._root_dataset.get_field_schema() if dataset is not None else {}


def _believed(dataset, kind: str, name: str) -> bool:
    doc = _coll().find_one(_key(dataset, kind, name))
    return doc is not None and _valid(dataset, doc)


# -- reading the record ---------------------------------------------------------------------
def entry(dataset, kind: str, name: str) -> Entry | None:
    """The record of ``name`` (of ``kind``; on ``dataset``, None for files), or None when this
    project did not write it — or wrote it, but it was since deleted or replaced (the stale
    record is dropped)."""
    if dataset is not None:
        adopt_legacy(dataset)
    coll = _coll()
    doc = coll.find_one(_key(dataset, kind, name))
    if doc is None:
        return None
    if not _valid(dataset, doc):
        coll.delete_one({"_id": doc["_id"]})
        return None
    return _entry(doc)


def owner_of(dataset, kind: str, name: str) -> str | None:
    """Who wrote ``name`` (an owner string such as ``run:vog``), None when not this project."""
    e = entry(dataset, kind, name)
    return e.owner if e else None


def owns(dataset, kind: str, name: str, owner: str | None = None) -> bool:
    """Whether this project (``owner``, if given) wrote ``name`` and it is still what was written."""
    e = entry(dataset, kind, name)
    return e is not None and (owner is None or e.owner == owner)


def listing(dataset=None, owner: str | None = None, kind: str | None = None) -> list[Entry]:
    """What the record lists as ours and still is (of ``dataset``; of ``owner`` / ``kind`` only,
    if given), in a stable order. ``dataset=None`` lists files and folders of no dataset."""
    if dataset is not None:
        adopt_legacy(dataset)
    query: dict = {"dataset_id": _dsid(dataset), "kind": {"$in": list(KINDS)}}
    if owner is not None:
        query["owner"] = owner
    if kind is not None:
        query["kind"] = kind
    coll = _coll()
    out, stale = [], []
    for doc in coll.find(query).sort([("kind", 1), ("name", 1)]):
        (out if _valid(dataset, doc) else stale).append(doc)
    if stale:
        coll.delete_many({"_id": {"$in": [d["_id"] for d in stale]}})
    return [_entry(d) for d in out]


def require(dataset, kind: str, name: str, owner: str | None = None, action: str = "delete", fix: str = "") -> Entry:
    """The record of ``name``, or :class:`VoGError` in one line: this project did not write it
    (or ``owner`` did not), so it never ``action``\\ s it."""
    e = entry(dataset, kind, name)
    what = f"{_WHAT[kind]} {name!r}" + (f" of dataset {dataset.name!r}" if dataset is not None else "")
    tail = f": {fix}" if fix else ""
    if e is None:
        raise VoGError(f"{what} was not written by fiftyone-vog; it never {action}s it{tail}")
    if owner is not None and e.owner != owner:
        raise VoGError(
            f"{what} belongs to {describe_owner(e.owner)}, not {describe_owner(owner)}; it is never {action}d "
            f"from here{tail}"
        )
    return e


# -- writing the record ---------------------------------------------------------------------
def record(dataset, kind: str, name: str, owner: str, role: str | None = None, options: dict | None = None) -> Entry:
    """Record that ``owner`` wrote ``name`` (which must exist now: a field just added, a view
    just saved, a file just written). A thing another owner holds is refused (hand it over with
    :func:`transfer`); recording it again for the same owner refreshes the record."""
    coll = _coll()
    key = _key(dataset, kind, name)
    prior = coll.find_one(key)
    if prior is not None and prior["owner"] != owner and _valid(dataset, prior):
        raise VoGError(
            f"{_WHAT[kind]} {name!r} belongs to {describe_owner(prior['owner'])}; {describe_owner(owner)} never takes it over"
        )
    if kind == FIELD:
        token = (prior or {}).get("ident") if prior is not None and prior["owner"] == owner else None
        token = token if token and token == _field_token(dataset, name) else uuid.uuid4().hex
        _stamp_field(dataset, name, token, owner, role)
        ident = token
    else:
        ident = _ident(dataset, kind, key["name"])
    if ident is None:
        raise VoGError(f"cannot record {_WHAT[kind]} {name!r}: it does not exist")  # a bug of ours, not the user's
    doc = {**key, "owner": owner, "role": role, "options": options or {}, "ident": ident, "written": _now()}
    coll.replace_one(key, doc, upsert=True)
    return _entry(doc)


def record_paths(paths: Iterable[str], owner: str, dataset=None, role: str | None = None) -> int:
    """Record many files and folders an export wrote, in bulk (each as it is on disk now)."""
    from pymongo import ReplaceOne

    ops, now = [], _now()
    for p in paths:
        kind = DIR if os.path.isdir(p) and not os.path.islink(p) else FILE
        key = _key(dataset, kind, p)
        ident = _stat(key["name"], kind)
        if ident is None:
            continue
        doc = {**key, "owner": owner, "role": role, "options": {}, "ident": ident, "written": now}
        ops.append(ReplaceOne(key, doc, upsert=True))
    for i in range(0, len(ops), 10_000):
        _coll().bulk_write(ops[i : i + 10_000], ordered=False)
    return len(ops)


def names(dataset, owner: str, kind: str = FIELD) -> list[str]:
    """The names of what ``owner`` wrote on ``dataset`` and still is (of ``kind``), sorted."""
    return [e.name for e in listing(dataset, owner=owner, kind=kind)]


def owners(dataset, kind: str = FIELD, family: str | None = None) -> dict[str, str]:
    """``{name: owner}`` of what the record lists on ``dataset`` (of ``kind``; owners of ``family``
    only, e.g. ``"run"`` for ``run:*``)."""
    return {
        e.name: e.owner for e in listing(dataset, kind=kind) if family is None or e.owner.partition(":")[0] == family
    }


def forget(dataset, kind: str, name: str) -> None:
    """Drop the record of ``name`` (after the thing itself was deleted, or handed to the user)."""
    _coll().delete_one(_key(dataset, kind, name))


def forget_owner(dataset, owner: str, kind: str | None = None) -> int:
    """Drop every record of ``owner`` (of ``kind`` only, if given) on ``dataset``."""
    query: dict = {"dataset_id": _dsid(dataset), "owner": owner}
    if kind is not None:
        query["kind"] = kind
    return _coll().delete_many(query).deleted_count


def transfer(dataset, kind: str, name: str, owner: str, new_owner: str, new_name: str | None = None) -> None:
    """Hand ``name`` (ours, of ``owner``) to ``new_owner`` and/or record its new name after a
    rename (call it after renaming the thing itself)."""
    coll = _coll()
    key = _key(dataset, kind, name)
    doc = coll.find_one(key)
    if doc is None or doc["owner"] != owner:
        raise VoGError(f"{_WHAT[kind]} {name!r} is not {describe_owner(owner)}'s to hand over")
    new_key = _key(dataset, kind, new_name or name)
    coll.delete_one(key)
    coll.replace_one(new_key, {**doc, **new_key, "owner": new_owner, "_id": doc["_id"]}, upsert=True)


def transfer_owner(dataset, owner: str, new_owner: str) -> int:
    """Hand everything ``owner`` wrote on ``dataset`` to ``new_owner`` (a renamed run); returns how
    many entries moved. Refused when ``new_owner`` already holds something."""
    coll = _coll()
    dsid = _dsid(dataset._root_dataset)
    if owner == new_owner:
        return 0
    if coll.count_documents({"dataset_id": dsid, "owner": new_owner, "kind": {"$in": list(KINDS)}}):
        raise VoGError(f"{describe_owner(new_owner)} already holds fields of dataset {dataset.name!r}; delete it first")
    return coll.update_many({"dataset_id": dsid, "owner": owner}, {"$set": {"owner": new_owner}}).modified_count


# -- creating, each recorded -------------------------------------------------------------------
def create_index(dataset, field_name: str, owner: str) -> str:
    """Index the sample field ``field_name`` (ascending) and record the index as ``owner``'s;
    returns the index's name."""
    ds = dataset._root_dataset
    name = ds.create_index(field_name)
    record(ds, INDEX, name, owner, options={"field": field_name})
    return name


def check_view_replaceable(dataset, name: str, owner: str, fix: str = "") -> None:
    """Refuse (:class:`VoGError`) to replace the saved view ``name`` unless it does not exist or
    an owner of ``owner``'s family (``views:*``) saved it."""
    ds = dataset._root_dataset
    if not ds.has_saved_view(name):
        return
    e = require(ds, VIEW, name, action="replace", fix=fix)
    family = owner.partition(":")[0]
    if e.owner.partition(":")[0] != family:
        raise VoGError(
            f"saved view {name!r} of dataset {ds.name!r} belongs to {describe_owner(e.owner)}, not "
            f"{describe_owner(owner)}; it is never replaced from here" + (f": {fix}" if fix else "")
        )


def save_view(dataset, name: str, view, owner: str, description: str | None = None, options=None, fix: str = ""):
    """Save ``view`` as ``name`` and record it as ``owner``'s; a saved view of that name is
    replaced only if :func:`check_view_replaceable` allows it."""
    ds = dataset._root_dataset
    check_view_replaceable(ds, name, owner, fix)
    ds.save_view(name, view, description=description, overwrite=True)
    forget(ds, VIEW, name)  # the old document (ours) is gone; the new one may have another owner
    return record(ds, VIEW, name, owner, options=options)


# -- the destructive steps, each asking the record first -----------------------------------
def delete_field(dataset, name: str, owner: str | None = None, fix: str = "") -> None:
    """Delete the sample field ``name`` (and with it its indexes) only if this project
    (``owner``) wrote it; else :class:`VoGError`."""
    ds = dataset._root_dataset
    require(ds, FIELD, name, owner, "delete", fix)
    ds.delete_sample_field(name)
    forget(ds, FIELD, name)
    _coll().delete_many({"dataset_id": _dsid(ds), "kind": INDEX, "options.field": name})


def delete_view(dataset, name: str, owner: str | None = None, fix: str = "") -> None:
    """Delete the saved view ``name`` only if this project (``owner``) saved it."""
    ds = dataset._root_dataset
    require(ds, VIEW, name, owner, "delete", fix)
    ds.delete_saved_view(name)
    forget(ds, VIEW, name)


def drop_index(dataset, name: str, owner: str | None = None, fix: str = "") -> None:
    """Drop the index ``name`` only if this project (``owner``) created it."""
    ds = dataset._root_dataset
    require(ds, INDEX, name, owner, "drop", fix)
    ds.drop_index(name)
    forget(ds, INDEX, name)


def remove_file(path: str, owner: str | None = None, dataset=None, fix: str = "") -> None:
    """Unlink ``path`` (a link itself, never its target) only if this project (``owner``) wrote
    it and it is unchanged since."""
    require(dataset, FILE, path, owner, "delete", fix)
    os.unlink(path)
    forget(dataset, FILE, path)


def remove_dir(path: str, owner: str | None = None, dataset=None, fix: str = "") -> None:
    """Remove the *empty* folder ``path`` only if this project (``owner``) created it."""
    require(dataset, DIR, path, owner, "delete", fix)
    os.rmdir(path)
    forget(dataset, DIR, path)


# -- exports: their files and folders, in bulk ---------------------------------------------------
#: Roles of an export's entries: the export directory it created, the hidden folder it builds
#: in; every other file and folder it wrote has no role.
ROOT, PARTIAL = "root", "partial"
_root_index_made = False


def _export_coll():
    global _root_index_made
    coll = _coll()
    if not _root_index_made:  # what an export wrote is found by its directory ("options.root")
        coll.create_index([("options.root", 1)], sparse=True)
        _root_index_made = True
    return coll


def export_dir_name(path) -> str:
    """An export directory as the record names it: absolute, the links above it resolved (before
    any ``..``), the last name kept."""
    return _norm(DIR, path)


def record_export(
    paths: Iterable[tuple[str, str]], owner: str, root: str, dataset=None, role: str | None = None
) -> list[Entry]:
    """Record, in bulk, the files and folders the export ``owner`` writes into the export
    directory ``root``: each ``(name, now)`` pair records ``name`` with the identity ``now`` has on
    disk at this moment. They differ for what is about to be moved into place (a rename keeps the
    device, inode, size and mtime), so that a move that never happens leaves a stale record, never
    an unrecorded file. A :data:`PARTIAL` folder is recorded with the time it was made (its mtime):
    what is written into it after that is the export's (:func:`written_since`)."""
    from pymongo import ReplaceOne

    ops, out, when = [], [], _now()
    dsid, root, parents = _dsid(dataset), export_dir_name(root), {}
    for name, now in paths:
        try:
            st = os.lstat(now)
        except OSError:
            continue
        kind = DIR if stat.S_ISDIR(st.st_mode) else FILE
        key = {"dataset_id": dsid, "kind": kind, "name": _norm(kind, name, parents)}
        options = {"root": root}
        if role == PARTIAL:
            options["since"] = st.st_mtime_ns
        ident = _ident_of(st, kind)
        doc = {**key, "owner": owner, "role": role, "options": options, "ident": ident, "written": when}
        ops.append(ReplaceOne(key, doc, upsert=True))
        out.append(_entry(doc))
    coll = _export_coll()
    for i in range(0, len(ops), 10_000):
        coll.bulk_write(ops[i : i + 10_000], ordered=False)
    return out


def written_into(root: str, owner: str | None = None) -> list[Entry]:
    """What exports (``owner`` only, if given) wrote into the export directory ``root`` and still
    is, of any dataset, in path order (stale records are dropped)."""
    query: dict = {"kind": {"$in": [FILE, DIR]}, "options.root": export_dir_name(root)}
    if owner is not None:
        query["owner"] = owner
    coll = _export_coll()
    out, stale = [], []
    for doc in coll.find(query):
        (out if _valid(None, doc) else stale).append(doc)
    for i in range(0, len(stale), 10_000):
        coll.delete_many({"_id": {"$in": [d["_id"] for d in stale[i : i + 10_000]]}})
    return sorted((_entry(d) for d in out), key=lambda e: e.name)


def wrote_into(root: str) -> bool:
    """Whether the record lists something an export wrote into ``root`` that still is (the
    first one found answers: cheap enough for a form's every keystroke)."""
    query = {"kind": {"$in": [FILE, DIR]}, "options.root": export_dir_name(root)}
    return any(_valid(None, doc) for doc in _export_coll().find(query))


def remove_paths(entries: Iterable[Entry]) -> list[Entry]:
    """:func:`remove_file` / :func:`remove_dir` in bulk: unlink each recorded file and remove
    each recorded, now empty folder (deepest first) that is still what was written — asked of the
    record again here, not of the caller. A file with another hard link is kept too (another name
    holds it). Returns the entries kept."""
    entries = list(entries)
    coll = _export_coll()
    docs = {}
    for e in entries:  # the record's own identities, re-read (never the caller's word)
        docs.setdefault((e.dataset_id, e.kind), []).append(e.name)
    ident = {}
    for (dsid, kind), names in docs.items():
        for i in range(0, len(names), 10_000):
            for d in coll.find({"dataset_id": dsid, "kind": kind, "name": {"$in": names[i : i + 10_000]}}):
                ident[(dsid, kind, d["name"])] = d
    kept, gone = [], []
    order = sorted(entries, key=lambda e: (e.kind == DIR, -e.name.count(os.sep)))  # files, then deepest folders
    for e in order:
        doc = ident.get((e.dataset_id, e.kind, e.name))
        try:
            if doc is None or not _valid(None, doc):
                raise OSError("not ours")
            if e.kind == FILE:
                if os.lstat(e.name).st_nlink > 1:
                    raise OSError("another hard link")
                os.unlink(e.name)
            else:
                os.rmdir(e.name)
        except OSError:
            kept.append(e)
            continue
        gone.append(doc["_id"])
    for i in range(0, len(gone), 10_000):
        coll.delete_many({"_id": {"$in": gone[i : i + 10_000]}})
    return kept


def written_since(path: str, since: int) -> tuple[set[str], set[str]]:
    """The files and folders below the folder ``path`` that were written after ``since`` (an
    mtime in ns) — what an export wrote into its own new hidden folder — as paths relative to
    it; a link, a file with another hard link and anything older (moved in) are not among them."""
    files, dirs = set(), set()
    for cur, dnames, fnames in os.walk(path):
        rel = os.path.relpath(cur, path)
        mine = []
        for name in dnames + fnames:
            try:
                st = os.lstat(os.path.join(cur, name))
            except OSError:
                continue
            r = name if rel == "." else os.path.join(rel, name)
            if st.st_mtime_ns >= since and stat.S_ISDIR(st.st_mode):
                dirs.add(r)
                mine.append(name)
            elif st.st_mtime_ns >= since and stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                files.add(r)
        dnames[:] = [d for d in dnames if d in mine]  # nothing below a folder not written here is
    return files, dirs


def remove_partial(e: Entry) -> list[str]:
    """Remove an export's hidden build folder (``e``, recorded as :data:`PARTIAL`) with what was
    written into it since it was made; returns what is kept there (paths relative to it)."""
    doc = _export_coll().find_one({"dataset_id": e.dataset_id, "kind": DIR, "name": e.name})
    if doc is None or doc.get("owner") != e.owner or doc.get("role") != PARTIAL or not _valid(None, doc):
        raise VoGError(f"folder {e.name!r} is not the folder a fiftyone-vog export builds in; it is never emptied")
    files, dirs = written_since(e.name, doc["options"]["since"])
    for rel in files:
        os.unlink(os.path.join(e.name, rel))
    for rel in sorted(dirs, key=lambda r: -r.count(os.sep)):
        try:
            os.rmdir(os.path.join(e.name, rel))
        except OSError:  # holds something not written here: kept
            pass
    left = sorted(os.path.relpath(os.path.join(c, n), e.name) for c, ds, fs in os.walk(e.name) for n in ds + fs)
    if not left:
        os.rmdir(e.name)
        _export_coll().delete_one({"_id": doc["_id"]})
    return left


# -- records of earlier versions --------------------------------------------------------------
def adopt_legacy(dataset) -> None:
    """Take over, once per dataset, what versions before this record wrote and recorded their
    own way: the fields a VoG run's config lists (present as float fields) and the audit fields
    whose ``info`` names the shuffle that wrote them. Nothing else is adopted: a field, view or
    file no record of ours describes stays the user's."""
    coll = _coll()
    ds = dataset._root_dataset
    mark = {"dataset_id": _dsid(ds), "kind": _META, "name": "adopted"}
    if coll.find_one(mark) is not None:
        return
    for name, owner, role in _legacy_fields(ds):
        if coll.find_one(_key(ds, FIELD, name)) is None:
            token = _field_token(ds, name) or uuid.uuid4().hex
            _stamp_field(ds, name, token, owner, role)
            key = _key(ds, FIELD, name)
            coll.replace_one(
                key,
                {**key, "owner": owner, "role": role, "options": {"adopted": True}, "ident": token, "written": _now()},
                upsert=True,
            )
    coll.replace_one(mark, {**mark, "owner": "", "written": _now()}, upsert=True)


def _legacy_fields(ds) -> list[tuple[str, str, str]]:
    import fiftyone as fo

    from .runs import run_fields, vog_run_keys

    schema = ds.get_field_schema()
    out = []
    for key in vog_run_keys(ds):
        for name in run_fields(ds, key):
            if isinstance(schema.get(name), fo.FloatField):
                out.append((name, run_owner(key), "score"))
    for name, f in schema.items():
        info = getattr(f, "info", None) or {}
        rec = info.get("fiftyone_vog_shuffle") if isinstance(info, dict) else None
        if isinstance(rec, dict) and rec.get("label_field") and rec.get("role") in ("flag", "original"):
            out.append((name, shuffle_owner(rec["label_field"]), rec["role"]))
    return out


def drop_orphans() -> int:
    """Drop the records of datasets that no longer exist; returns how many. Never raises."""
    import logging

    import fiftyone.core.odm as foo
    from bson import ObjectId
    from bson.errors import InvalidId

    try:
        db = foo.get_db_conn()
        coll = _coll()
        ids = {}
        for sid in coll.distinct("dataset_id"):
            try:
                ids[ObjectId(sid)] = sid
            except (InvalidId, TypeError):
                continue
        alive = {d["_id"] for d in db.datasets.find({"_id": {"$in": list(ids)}}, {"_id": True})}
        gone = [sid for oid, sid in ids.items() if oid not in alive]
        return coll.delete_many({"dataset_id": {"$in": gone}}).deleted_count if gone else 0
    except Exception as e:
        logging.getLogger(__name__).warning("could not drop the ownership records of deleted datasets: %s", e)
        return 0
