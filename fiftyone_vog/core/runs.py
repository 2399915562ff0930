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
    ``RunConfig`` carrying :data:`RUN_METHOD`)."""
    return [k for k in dataset.list_runs() if is_vog_run(dataset, k)]


def is_vog_run(dataset, key: str) -> bool:
    try:
        return dataset.get_run_info(key).config.method == RUN_METHOD
    except Exception:  # a run whose config cannot be loaded is not ours to judge
        return False


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


def cleanup_run(dataset, key: str, fields=()) -> None:
    """Delete the fields the ownership record lists as run ``key``'s (with the indexes on them),
    the partial scores under ``key`` and its "writing" mark. A field of ``fields`` (the run's
    config) that the record does not list as the run's — another run's, or the user's — is kept,
    with a warning."""
    import logging

    from . import ownership
    from .locks import clear_writing
    from .resume import drop_partials

    owner = ownership.run_owner(key)
    drop_partials(dataset, key)
    mine = ownership.names(dataset, owner)
    schema = dataset.get_field_schema()
    for name in fields:
        if name in schema and name not in mine:
            theirs = ownership.owner_of(dataset, ownership.FIELD, name)
            logging.getLogger(__name__).warning(
                "kept field %r of dataset %r: %s",
                name,
                dataset.name,
                f"it belongs to {ownership.describe_owner(theirs)}" if theirs else "fiftyone-vog did not write it",
            )
    for name in mine:
        ownership.delete_field(dataset, name, owner)
    ownership.forget_owner(dataset, owner)  # anything else it held (a stale index record)
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
    default) the fields the ownership record lists as the run's, with their indexes — never a
    field of another run or of the user (kept, with a warning). ``delete_fields=False`` keeps the
    fields and their indexes and hands them to the user (fiftyone-vog never touches them again).
    Also cleans up after a run whose FiftyOne record is gone but whose fields are left (an
    interrupted compute, FiftyOne's ``delete_run`` while it computed). Refused while another
    process computes that key. ``dataset.delete_run(key)`` does the same."""
    from . import ownership
    from .locks import run_lock
    from .resume import drop_partials

    with run_lock(dataset, key, what="delete"):
        owner = ownership.run_owner(key)
        registered = dataset.has_run(key)
        if registered or not ownership.listing(dataset, owner=owner):
            get_vog_run(dataset, key)  # refuses a key that is not a VoG run, and nothing at all
        if delete_fields:
            cleanup_run(dataset, key, run_fields(dataset, key) if registered else ())
        else:
            drop_partials(dataset, key)
            ownership.forget_owner(dataset, owner)  # the user's now
        if registered:
            fors.Run.delete_run(dataset, key, cleanup=False)  # cleaned up above, for old-style runs too
