"""The VoG run type: a FiftyOne run (``RunConfig`` / ``Run`` / ``RunResults`` subclasses).

FiftyOne finds these classes by the ``cls`` path it stores with each run, so its own
``dataset.delete_run(key)``, ``rename_run`` and ``list_runs(method=...)`` do the right thing:
deleting a VoG run removes the fields it wrote (those no other run owns), their indexes and the
partial scores of interrupted runs under its key. Runs written before this type existed (a plain
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


class VoGRun(fors.Run):
    """What FiftyOne calls to clean up, rename or validate a VoG run."""

    def get_fields(self, samples, key):
        return list(getattr(self.config, "fields", []))

    def cleanup(self, samples, key):
        """Delete the run's fields that no other registered run owns, and its partial scores."""
        from .resume import drop_partials

        ds = samples._root_dataset
        drop_partials(ds, key)
        others = fields_of_other_runs(ds, key)
        schema = ds.get_field_schema()
        for name in self.get_fields(ds, key):
            if name in schema and name not in others:
                ds.delete_sample_field(name)  # also drops the field's index

    def rename(self, samples, key, new_key):
        """The fields keep their names (as FiftyOne's brain runs do); partial scores move."""
        from .resume import rename_partials

        rename_partials(samples._root_dataset, key, new_key)


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


def is_vog_run(dataset, key: str) -> bool:
    try:
        return dataset.get_run_info(key).config.method == RUN_METHOD
    except Exception:  # a run whose config cannot be loaded is not ours to judge
        return False


def fields_of_other_runs(dataset, key: str) -> set[str]:
    """Every field that a registered run other than ``key`` lists as its own."""
    owned = set()
    for k in dataset.list_runs():
        if k == key:
            continue
        try:
            owned.update(getattr(dataset.get_run_info(k).config, "fields", None) or [])
        except Exception:
            continue
    return owned
