"""The VoG run type: a FiftyOne run (``RunConfig`` / ``Run`` / ``RunResults`` subclasses).

FiftyOne finds these classes by the ``cls`` path it stores with each run, so its own
``dataset.delete_run(key)``, ``rename_run`` and ``list_runs(method=...)`` do the right thing:
deleting a VoG run removes the fields the ownership record (:mod:`.ownership`) lists as its own,
their indexes and the partial scores of interrupted runs under its key; renaming it hands that
record to the new key. Runs written before this type existed (a plain
``RunConfig`` with our method string) still list and load; :func:`upgrade_run` gives them the
type the next time they are touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import fiftyone.core.runs as fors

from ..options import DEFAULTS

#: The method string every VoG run carries (also on runs from earlier versions).
RUN_METHOD = "fiftyone_vog.compute_vog"
#: The run key ``compute_vog`` writes by default (its ``vog_field``): the run to show first.
DEFAULT_KEY = DEFAULTS["vog_field"]


class VoGRunConfig(fors.RunConfig):
    """A VoG run's configuration: every argument of the run, checkpoint hashes, field names.

    ``fields`` lists every sample field the run wrote; ``vog_field`` the class-normalized one.
    """

    def __init__(self, **kwargs):
        kwargs.pop("method", None)
        super().__init__(method=RUN_METHOD, **kwargs)

    @property
    def method(self):
        return RUN_METHOD

    @method.setter
    def method(self, method):  # FiftyOne's RunConfig sets it; ours is fixed
        pass

    def __getitem__(self, name):  # results.config["vog_field"], as when the config was a dict
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name, default=None):
        return getattr(self, name, default)


class VoGRun(fors.Run):
    """What FiftyOne calls to clean up, rename or validate a VoG run."""

    def get_fields(self, samples, key):
        return list(getattr(self.config, "fields", []))

    def cleanup(self, samples, key):
        """What ``dataset.delete_run(key)`` calls: the fields the ownership record lists as the
        run's (:mod:`.ownership`), their indexes, its partial scores and its "writing" mark go —
        under the run lock: while another process computes that key the fields stay (FiftyOne logs
        why and drops the run record regardless; the record still lists the fields as the run's,
        so :func:`delete_vog_run` or a compute with ``overwrite`` of that key cleans them later)."""
        from .locks import holds_lock, run_lock

        dataset = samples._root_dataset
        if holds_lock(dataset, key):  # called from within this thread's own locked run
            cleanup_run(dataset, key, self.get_fields(samples, key))
            return
        with run_lock(dataset, key, what="delete"):
            cleanup_run(dataset, key, self.get_fields(samples, key))

    def rename(self, samples, key, new_key):
        """The fields keep their names (as FiftyOne's brain runs' do) and stay listed in the
        config; the ownership record hands them (and their indexes) to the new key."""
        from . import ownership

        ownership.transfer_owner(samples._root_dataset, ownership.run_owner(key), ownership.run_owner(new_key))


class VoGResults(fors.RunResults):
    """What :func:`~fiftyone_vog.compute_vog` computed, and what :func:`~fiftyone_vog.load_vog_results`
    loads: per-class statistics, a summary per window and timings. Stored by FiftyOne with the run.

    Attributes (on a run just computed, also the arrays, aligned with ``ids``):
        class_stats: ``{window: {class_name: {"mean", "std", "count"}}}`` of raw scores.
        summary: ``{window: {"mean", "std", "min", "max"}}`` of raw scores.
        timings: seconds: ``load`` (checks, checkpoints, and the idle-core measurement that picks
            the CPU thread count), ``score`` (with ``compute`` and ``data_wait``), ``write``, ``total``.
        ids, raw, scores, used_labels, predicted, classes: only on the object ``compute_vog``
            returns (not stored: the scores are in the sample fields).
    """

    _ARRAYS = ("ids", "raw", "scores", "used_labels", "predicted", "classes")

    def __init__(self, samples, config, key, backend=None, **kwargs):
        arrays = {k: kwargs.pop(k, None) for k in self._ARRAYS}
        super().__init__(samples, config, key, backend=backend, **kwargs)
        for k, v in arrays.items():
            object.__setattr__(self, k, v)

    def attributes(self):
        return [a for a in super().attributes() if a not in self._ARRAYS]

    @property
    def vog_field(self) -> str:
        return self.config.vog_field

    def __getitem__(self, field_name: str):
        if self.scores is None:
            return self.samples.values(field_name)
        return self.scores[field_name]

    def __repr__(self):
        n = len(self.ids) if self.ids is not None else "?"
        return f"VoGResults(vog_field={self.vog_field!r}, samples={n}, fields={list(self.config.fields)})"


class MixedFieldsWarning(UserWarning):
    """A write of a VoG run was killed half way: its fields may be mixed (the message says how to repair)."""


def vog_run_keys(dataset) -> list[str]:
    """Keys of the VoG runs on ``dataset``: this run type, and runs of earlier versions (a plain
    ``RunConfig`` carrying :data:`RUN_METHOD`). Told by the run documents' method, without loading
    a class (another tool's run whose class does not import is not logged about); a run an earlier
    version made in the App gets this package's class paths here (:func:`_migrate_class_paths`)."""
    docs = _run_docs(dataset)
    return [k for k in dataset.list_runs() if k in docs and _is_ours(docs[k])]


def is_vog_run(dataset, key: str) -> bool:
    doc = _run_docs(dataset).get(key)
    return doc is not None and _is_ours(doc)


def _run_docs(dataset) -> dict:
    """``{key: RunDocument}`` of the runs ``dataset`` lists (FiftyOne's ``runs`` of the dataset
    document; its ``config`` is the stored dict, no class loaded)."""
    return dict(dataset._root_dataset._doc.runs)


def _is_ours(doc) -> bool:
    if (doc.config or {}).get("method") != RUN_METHOD:
        return False
    _migrate_class_paths(doc)
    return True


#: A class path recorded under the module name FiftyOne's plugin loader gives the plugin
#: (``fiftyone.plugins.orgs.fiftyone_vog.vog…``): what runs made in the App or by a delegated
#: worker stored before the plugin ran the package itself (``fiftyone_vog._as_package``).
_PLUGIN_CLASS_PATH = re.compile(r"^fiftyone\.plugins\.orgs\.\w+\.\w+\.(core\.runs\.VoG(?:RunConfig|Results))$")


def _our_class_path(path) -> str | None:
    """This package's path of a class recorded under the plugin's module name; None for any other."""
    m = _PLUGIN_CLASS_PATH.match(path) if isinstance(path, str) else None
    return f"fiftyone_vog.{m.group(1)}" if m else None


def _migrate_class_paths(doc) -> None:
    """Rewrite, once, the plugin-module class paths of VoG run ``doc``: its stored results (a
    GridFS file) first, then its config, which marks the run as done — so a run whose config is
    right costs nothing to check. Each step is a conditional update: a process rewriting the same
    run at the same moment changes nothing twice."""
    new_cls = _our_class_path(doc.config.get("cls"))
    if new_cls is None:
        return
    import fiftyone.core.odm as foo_odm
    import gridfs
    from bson import json_util

    db = foo_odm.get_db_conn()
    if doc.results:
        doc.results.seek(0)
        stored = json_util.loads(doc.results.read().decode())
        results_cls = _our_class_path(stored.get("cls"))
        if results_cls is not None:
            stored["cls"] = results_cls
            fs = gridfs.GridFS(db, doc.results.collection_name)
            old_id = doc.results.grid_id
            new_id = fs.put(json_util.dumps(stored).encode(), content_type="application/json")
            swapped = db.runs.update_one({"_id": doc.id, "results": old_id}, {"$set": {"results": new_id}})
            fs.delete(old_id if swapped.modified_count else new_id)  # one results file per run
    db.runs.update_one({"_id": doc.id, "config.cls": doc.config["cls"]}, {"$set": {"config.cls": new_cls}})
    doc.reload()


def run_fields(dataset, key: str) -> list[str]:
    """The fields the VoG run ``key`` recorded as its own ([] for a run of a version that did not
    record them)."""
    return list(getattr(dataset.get_run_info(key).config, "fields", None) or [])


def field_owners(dataset, exclude: str | None = None) -> dict[str, str]:
    """``{field: run key}`` of the fields the ownership record lists as a VoG run's (but run
    ``exclude``'s) on ``dataset`` — whether or not that run is still registered."""
    from . import ownership

    out = {}
    for name, owner in ownership.owners(dataset, ownership.FIELD, family="run").items():
        key = owner.partition(":")[2]
        if key != exclude:
            out[name] = key
    return out


@dataclass
class RunContents:
    """What a VoG run owns on its dataset: what deleting it removes, and what it keeps.

    Attributes:
        key: the run key.
        fields: the fields the ownership record (:mod:`.ownership`) lists as the run's (they go).
        kept: ``{field: why}`` of the fields its config names that the record does not list as
            its own — another run's, or the user's (they stay).
        indexes: the indexes on ``fields`` (they go with them).
        views: the saved views ``save_vog_views`` saved over the run (:mod:`.run_views`; a
            user's view of the same name is not among them).
    """

    key: str
    fields: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    indexes: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per kind of thing, for a confirmation ("fields: vog, vog_raw")."""
        out = [
            f"{what}: {', '.join(names) if names else '(none)'}"
            for what, names in (("fields", self.fields), ("indexes", self.indexes), ("saved views", self.views))
        ]
        if self.kept:
            out.append("kept: " + ", ".join(f"{f} ({why})" for f, why in self.kept.items()))
        return out


def _score_field(dataset, key: str) -> str:
    """The score field of run ``key`` (its views are recorded under it): the config's, else the key."""
    if not dataset.has_run(key):
        return key
    return getattr(dataset.get_run_info(key).config, "vog_field", None) or key


def vog_run_contents(dataset, key: str, fields=None) -> RunContents:
    """What VoG run ``key`` owns on ``dataset`` (:class:`RunContents`): what :func:`delete_vog_run`
    deletes, and which of its config's fields (or of ``fields``) it keeps, and why."""
    from . import ownership
    from .run_views import run_views

    if fields is None:
        fields = run_fields(dataset, key) if dataset.has_run(key) else ()
    owned = ownership.names(dataset, ownership.run_owner(key))
    mine = [f for f in fields if f in owned] + [f for f in owned if f not in fields]  # the run's order first
    schema = dataset.get_field_schema()
    kept = {}
    for name in fields:
        if name in schema and name not in mine:
            theirs = ownership.owner_of(dataset, ownership.FIELD, name)
            kept[name] = (
                f"it belongs to {ownership.describe_owner(theirs)}" if theirs else "fiftyone-vog did not write it"
            )
    indexes = [
        name
        for name, index in dataset.get_index_information().items()
        if any(path.split(".")[0] in mine for path, _ in index["key"])
    ]
    return RunContents(key, mine, kept, indexes, run_views(dataset, _score_field(dataset, key)))


def cleanup_run(dataset, key: str, fields=()) -> RunContents:
    """Delete what run ``key`` owns (:func:`vog_run_contents`): the saved views ``save_vog_views``
    saved over it, the fields the ownership record lists as its own (with the indexes on them),
    the partial scores under ``key`` and its "writing" mark. A field of ``fields`` (the run's
    config) that the record does not list as the run's — another run's, or the user's — is kept,
    with a warning. Returns what it deleted."""
    import logging

    from . import ownership
    from .locks import clear_writing
    from .resume import drop_partials

    owner = ownership.run_owner(key)
    contents = vog_run_contents(dataset, key, fields)
    views_owner = ownership.views_owner(_score_field(dataset, key))
    drop_partials(dataset, key)
    for name, why in contents.kept.items():
        logging.getLogger(__name__).warning("kept field %r of dataset %r: %s", name, dataset.name, why)
    for name in contents.views:
        ownership.delete_view(dataset, name, views_owner)
    for name in contents.fields:
        ownership.delete_field(dataset, name, owner)
    ownership.forget_owner(dataset, owner)  # anything else it held (a stale index record)
    clear_writing(dataset, key)  # its fields are gone: nothing is left mixed
    return contents


def _warn_unfinished(dataset, keys=None) -> list[str]:
    """Warn once per write of ``keys`` (all, if None) that was killed half way; their messages."""
    import warnings

    from .locks import mixed_message, unfinished_writes

    messages = [mixed_message(doc) for doc in unfinished_writes(dataset, keys)]
    for m in messages:
        warnings.warn(m, MixedFieldsWarning, stacklevel=3)
    return messages


def list_vog_runs(dataset) -> list[str]:
    """Keys of the VoG runs registered on ``dataset``. Warns (:class:`MixedFieldsWarning`) about any
    write of a VoG run on it that was killed half way, with the command that repairs it."""
    _warn_unfinished(dataset)
    return vog_run_keys(dataset)


def preferred_runs(dataset, runs=None) -> list[str]:
    """The VoG run keys of ``dataset`` (or ``runs``, a subset) in the order to offer them: the
    default run ``vog`` first, then the most recent first."""
    return sorted(
        newest_runs(dataset, runs), key=lambda k: k != DEFAULT_KEY
    )  # stable: vog first, the rest newest first


def newest_runs(dataset, runs=None) -> list[str]:
    """The VoG run keys of ``dataset`` (or ``runs``, a subset), the one made last first."""
    import datetime

    docs = _run_docs(dataset)
    keys = vog_run_keys(dataset) if runs is None else list(runs)
    oldest = datetime.datetime.min
    return sorted(keys, key=lambda k: getattr(docs.get(k), "timestamp", None) or oldest, reverse=True)


def get_vog_run(dataset, key: str = "vog"):
    """The run's info (``.config``, ``.timestamp``) for a VoG run key. Warns
    (:class:`MixedFieldsWarning`) if a write of that key was killed half way."""
    from ..errors import VoGError

    mixed = _warn_unfinished(dataset, [key])
    runs = vog_run_keys(dataset)
    if key not in runs:
        more = f"; {mixed[0]}" if mixed else ""
        raise VoGError(f"no VoG run {key!r} on dataset {dataset.name!r}; runs: {runs}{more}")
    return dataset.get_run_info(key)


def load_vog_results(dataset, key: str = "vog"):
    """The stored :class:`VoGResults` of a run: per-class statistics, summary, timings (runs of
    earlier versions load as FiftyOne's generic ``RunResults`` with the same attributes)."""
    get_vog_run(dataset, key)
    return dataset.load_run_results(key)


def delete_vog_run(dataset, key: str = "vog", delete_fields: bool = True, dry_run: bool = False) -> RunContents:
    """Delete a VoG run, the partial scores interrupted runs left under its key, and (by
    default) what it owns (:func:`vog_run_contents`): the fields the ownership record lists as
    the run's, with their indexes, and the saved views ``save_vog_views`` saved over it — never a
    field or view of another run or of the user (kept, with a warning). ``delete_fields=False``
    keeps the fields and their indexes and hands them to the user (fiftyone-vog never touches
    them again), and keeps the views. Also cleans up after a run whose FiftyOne record is gone
    but whose fields are left (an interrupted compute, FiftyOne's ``delete_run`` while it
    computed). Refused while another process computes that key. ``dataset.delete_run(key)`` does
    the same.

    Returns what was deleted (:class:`RunContents`); ``dry_run=True`` deletes nothing and returns
    what would be (what the App's and the CLI's confirmations list)."""
    from . import ownership
    from .locks import run_lock
    from .resume import drop_partials

    owner = ownership.run_owner(key)

    def check():
        if dataset.has_run(key) or not ownership.listing(dataset, owner=owner):
            get_vog_run(dataset, key)  # refuses a key that is not a VoG run, and nothing at all

    if dry_run:
        check()
        return vog_run_contents(dataset, key) if delete_fields else RunContents(key)
    with run_lock(dataset, key, what="delete"):
        check()
        registered = dataset.has_run(key)
        if delete_fields:
            contents = cleanup_run(dataset, key, run_fields(dataset, key) if registered else ())
        else:
            drop_partials(dataset, key)
            ownership.forget_owner(dataset, owner)  # the user's now
            contents = RunContents(key)
        if registered:
            fors.Run.delete_run(dataset, key, cleanup=False)  # cleaned up above, for old-style runs too
    return contents


def describe_vog_run(dataset, key: str = "vog") -> dict:
    """Everything about VoG run ``key`` for a person deciding what to do with it: ``key``,
    ``created`` (UTC, ISO 8601), ``fiftyone_version``, ``config`` (checkpoints and their hashes,
    model, options, device, threads, batch size, …), ``timings`` (seconds), and what it owns:
    ``fields``, ``kept``, ``indexes``, ``views`` (:class:`RunContents`)."""
    info = get_vog_run(dataset, key)
    results = dataset.load_run_results(key)
    contents = vog_run_contents(dataset, key)
    return {
        "key": key,
        "created": info.timestamp.isoformat(sep=" ", timespec="seconds") if info.timestamp else None,
        "fiftyone_version": info.version,
        "config": {k: v for k, v in info.config.serialize().items() if k not in ("cls", "type", "method")},
        "timings": dict(getattr(results, "timings", None) or {}),
        "fields": contents.fields,
        "kept": contents.kept,
        "indexes": contents.indexes,
        "views": contents.views,
    }


def rename_vog_run(dataset, key: str, new_key: str, dry_run: bool = False) -> dict[str, str]:
    """Rename VoG run ``key`` to ``new_key``, its fields with it: ``vog`` → ``vog2`` renames
    ``vog``, ``vog_raw``, the windows' and the companions' fields to ``vog2``, ``vog2_raw``, …
    (their indexes and the App's sidebar follow), records the new names in the run and in the
    ownership record (:mod:`.ownership`), and points the saved views ``save_vog_views`` saved
    over them at the new names.

    Refused, before anything changes, when ``new_key`` is not a valid field name, names a run
    already, or any new field name is taken (by any field); when a field the run's config names
    is not the run's in the ownership record (another run's, or the user's); when fiftyone-vog
    still holds fields of an earlier run ``new_key``; while another process computes or deletes
    either key, or after a write of ``key`` was killed half way (repair it first). A failure
    half way puts the names back. FiftyOne's own ``dataset.rename_run`` renames the key only.

    Returns ``{old field: new field}`` of the fields renamed; ``dry_run=True`` renames nothing
    and returns what would be (raising what would be refused).
    """
    from ..errors import VoGError
    from . import ownership
    from .locks import mixed_message, run_lock, unfinished_writes
    from .run_views import rename_view_fields
    from .signals import deferred_signals

    plan = _rename_plan(dataset, key, new_key)
    if dry_run:
        return plan.fields
    with run_lock(dataset, key, what="rename"), run_lock(dataset, new_key, what="rename"):
        plan = _rename_plan(dataset, key, new_key)  # again, under the locks
        mixed = unfinished_writes(dataset, [key])
        if mixed:
            raise VoGError(f"not renamed: {mixed_message(mixed[0])}")
        config = dataset.get_run_info(key).config
        old_config = config.serialize()
        back = {new: old for old, new in plan.fields.items()}
        owner, base = ownership.run_owner(key), _score_field(dataset, key)
        undo = []
        try:
            if plan.fields:
                ownership.rename_fields(dataset, plan.fields, owner)
                undo.append(lambda: ownership.rename_fields(dataset, back, owner))
            config.vog_field = new_key
            config.fields = plan.recorded
            fors.Run.update_run_config(dataset, key, config)
            undo.append(lambda: fors.Run.update_run_config(dataset, key, VoGRunConfig.from_dict(old_config)))
            dataset.rename_run(key, new_key)  # VoGRun.rename hands the record to run:new_key
            undo.append(lambda: dataset.rename_run(new_key, key))  # undone first: the config is under key again
            undo.append(lambda: rename_view_fields(dataset, new_key, base, back))
            rename_view_fields(dataset, base, new_key, plan.fields)
        except BaseException:
            with deferred_signals(drop_sigint=True):  # a second Ctrl-C must not cut the undo short
                for step in reversed(undo):
                    step()
            raise
    return plan.fields


@dataclass
class _RenamePlan:
    fields: dict[str, str]  # {old: new} of the fields on the dataset
    recorded: list[str]  # the run's new field list (fields the dataset no longer has included)
    views: list[str]  # the run's saved views (they follow)


def _rename_plan(dataset, key: str, new_key: str) -> _RenamePlan:
    """What :func:`rename_vog_run` renames, or the one-line refusal."""
    from ..errors import VoGError
    from . import ownership
    from .naming import check_derived_name, check_field_name, raw_field_name
    from .run_views import run_views

    config = get_vog_run(dataset, key).config  # refuses a key that is not a VoG run
    check_field_name(new_key, what="new_key")
    if new_key == key:
        raise VoGError(f"new_key={new_key!r} is the run's key already; choose another name")
    if new_key in dataset.list_runs():
        raise VoGError(
            f"new_key={new_key!r} is taken: dataset {dataset.name!r} has a run {new_key!r}; choose another name"
        )
    schema = dataset.get_field_schema()
    base = getattr(config, "vog_field", None) or key
    recorded = run_fields(dataset, key) or [f for f in (base, raw_field_name(base)) if f in schema]
    names = {}
    for name in recorded:
        if name != base and not name.startswith(f"{base}_"):
            raise VoGError(f"field {name!r} of VoG run {key!r} is not named after {base!r}; it cannot follow a rename")
        names[name] = check_derived_name(new_key + name[len(base) :], f"new_key={new_key!r}")
    taken = [new for new in names.values() if new in schema]
    if taken:
        raise VoGError(f"new_key={new_key!r} would rename a field to {taken[0]!r}, which exists; choose another name")
    present = {old: new for old, new in names.items() if old in schema}
    kept = vog_run_contents(dataset, key, present).kept
    if kept:
        name, why = next(iter(kept.items()))
        raise VoGError(
            f"field {name!r} of VoG run {key!r} is not the run's ({why}); renaming the run would rename it: "
            "delete or rename that field yourself first"
        )
    if ownership.listing(dataset, owner=ownership.run_owner(new_key)):
        raise VoGError(
            f"new_key={new_key!r}: fiftyone-vog still holds fields of an earlier run {new_key!r} on dataset "
            f"{dataset.name!r}; remove them with fov.delete_vog_run(dataset, {new_key!r}) or choose another name"
        )
    return _RenamePlan(present, list(names.values()), run_views(dataset, base))
