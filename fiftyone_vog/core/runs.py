"""The VoG run type: a FiftyOne run (``RunConfig`` / ``Run`` / ``RunResults`` subclasses).

FiftyOne finds these classes by the ``cls`` path it stores with each run, so its own
``dataset.delete_run(key)``, ``rename_run`` and ``list_runs(method=...)`` do the right thing:
deleting a VoG run removes the fields it wrote (those no other run owns), their indexes and the
partial scores of interrupted runs under its key. Runs written before this type existed (a plain
``RunConfig`` with our method string) still list and load; :func:`upgrade_run` gives them the
type the next time they are touched.
"""

from __future__ import annotations

import re

import fiftyone.core.runs as fors

#: The method string every VoG run carries (also on runs from earlier versions).
RUN_METHOD = "fiftyone_vog.compute_vog"


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
        """What ``dataset.delete_run(key)`` calls: the run's fields (those no other run claims),
        their indexes, its partial scores and its "writing" mark go — under the run lock: while
        another process computes that key the fields stay (FiftyOne logs why and drops the run
        record regardless; that process's write registers its run when it ends)."""
        from .locks import holds_lock, run_lock

        dataset = samples._root_dataset
        if holds_lock(dataset, key):  # called from within this thread's own locked run
            cleanup_run(dataset, key, self.get_fields(samples, key))
            return
        with run_lock(dataset, key, what="delete"):
            cleanup_run(dataset, key, self.get_fields(samples, key))

    def rename(self, samples, key, new_key):
        """Nothing to move: the fields keep their names (as FiftyOne's brain runs' do) and stay
        listed in the config, and partial scores belong to the field name, not the run key."""


class VoGResults(fors.RunResults):
    """What :func:`~fiftyone_vog.compute_vog` computed, and what :func:`~fiftyone_vog.load_vog_results`
    loads: per-class statistics, a summary per window and timings. Stored by FiftyOne with the run.

    Attributes (on a run just computed, also the arrays, aligned with ``ids``):
        class_stats: ``{window: {class_name: {"mean", "std", "count"}}}`` of raw scores.
        summary: ``{window: {"mean", "std", "min", "max"}}`` of raw scores.
        timings: seconds: ``load``, ``score`` (with ``compute`` and ``data_wait``), ``write``, ``total``.
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
    """``{field: run key}`` of the fields the VoG runs of ``dataset`` (but ``exclude``) wrote."""
    out = {}
    for k in vog_run_keys(dataset):
        if k != exclude:
            for name in run_fields(dataset, k):
                out.setdefault(name, k)
    return out


def cleanup_run(dataset, key: str, fields) -> None:
    """Delete ``fields`` of run ``key`` but any another VoG run claims (kept, with a warning; the
    indexes go with the fields), the partial scores under ``key`` and its "writing" mark."""
    import logging

    from .locks import clear_writing
    from .resume import drop_partials

    drop_partials(dataset, key)
    schema = dataset.get_field_schema()
    owners = field_owners(dataset, exclude=key)
    for name in fields:
        if name in owners:
            logging.getLogger(__name__).warning(
                "kept field %r: the VoG run %r of dataset %r claims it too", name, owners[name], dataset.name
            )
        elif name in schema:
            dataset.delete_sample_field(name)
    clear_writing(dataset, key)  # its fields are gone: nothing is left mixed


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


def delete_vog_run(dataset, key: str = "vog", delete_fields: bool = True) -> None:
    """Delete a VoG run, the partial scores interrupted runs left under its key, and (by
    default) the fields it wrote — but never a field another VoG run also claims (kept, with a
    warning), with their indexes; ``delete_fields=False`` keeps both. Refused while another process
    computes that key. ``dataset.delete_run(key)`` does the same."""
    from .locks import run_lock
    from .resume import drop_partials

    with run_lock(dataset, key, what="delete"):
        get_vog_run(dataset, key)  # refuses a key that is not a VoG run
        if delete_fields:
            cleanup_run(dataset, key, run_fields(dataset, key))
        else:
            drop_partials(dataset, key)
        fors.Run.delete_run(dataset, key, cleanup=False)  # cleaned up above, for old-style runs too
