"""Export a VoG slice (a saved view such as ``vog-high``, or any view) to a directory."""

from __future__ import annotations

import csv
import logging
import os

from ..errors import VoGError
from ..inputs.labels import check_classification_field
from ..options import DEFAULT_EXPORT_TYPE, EXPORT_TYPES
from .export_safety import abandon, check_export_dir, commit, describe_os_error, stage

#: ``dataset_type`` → what is written.
DATASET_TYPES = dict(
    zip(
        EXPORT_TYPES,
        (
            "FiftyOne's ImageClassificationDirectoryTree: one folder per label with the images",
            "FiftyOneDataset: media and every field, re-importable with fo.Dataset.from_dir",
            "manifest.csv: id, filepath, label and every VoG field of the run, in the view's order",
        ),
        strict=True,
    )
)
MANIFEST_NAME = "manifest.csv"
logger = logging.getLogger(__name__)


def resolve_view(view_or_saved_view_name, dataset=None):
    """A view or dataset as is; a saved-view name loaded from ``dataset`` (a dataset or its name)."""
    if not isinstance(view_or_saved_view_name, str):
        if not hasattr(view_or_saved_view_name, "_dataset"):
            raise VoGError(
                f"expected a FiftyOne dataset, view or saved-view name, got {type(view_or_saved_view_name).__name__}"
            )
        return view_or_saved_view_name
    name = view_or_saved_view_name
    if dataset is None:
        raise VoGError(f"{name!r} is a saved-view name: pass dataset= (the dataset or its name) to load it from")
    if isinstance(dataset, str):
        import fiftyone as fo

        if not fo.dataset_exists(dataset):
            raise VoGError(f"dataset {dataset!r} not found; datasets: {fo.list_datasets()}")
        dataset = fo.load_dataset(dataset)
    ds = dataset._dataset
    if not ds.has_saved_view(name):
        raise VoGError(
            f"saved view {name!r} not found on {ds.name!r}; saved views: {ds.list_saved_views()} "
            f"(fov.save_vog_views creates the vog-* views)"
        )
    return ds.load_saved_view(name)


def vog_fields(samples, vog_field: str = "vog") -> list[str]:
    """The score fields of the VoG run ``vog_field`` present on ``samples``.

    The run's registered ``config.fields`` when the run exists (``vog``, ``vog_raw``, window
    fields), else the numeric fields named ``vog_field`` or starting with ``f"{vog_field}_"``.
    """
    import fiftyone as fo

    from ..core.compute import list_vog_runs

    ds = samples._dataset
    schema = samples.get_field_schema()
    if vog_field in list_vog_runs(ds):
        names = list(ds.get_run_info(vog_field).config.fields)
    else:
        names = [f for f in schema if f == vog_field or f.startswith(vog_field + "_")]
    return [f for f in names if isinstance(schema.get(f), (fo.FloatField, fo.IntField))]


def _check_target(export_dir, overwrite, samples=None):
    """Refused targets and what Overwrite may replace: see :mod:`fiftyone_vog.audit.export_safety`."""
    return check_export_dir(export_dir, samples, overwrite)


class ExportResult(str):
    """The export's path (a ``str``, as before) with ``num_samples``: how many samples were exported."""

    num_samples: int = 0
    export_dir: str = ""
    warning: str | None = None


def _abandon(st) -> str | None:
    """Undo a failed export (see :func:`~fiftyone_vog.audit.export_safety.abandon`); never raises."""
    try:
        return abandon(st)
    except Exception as e:  # the original error matters more
        return f"could not remove the partial export in {st.path}: {e}"


def _write_csv(samples, path, label_field, fields):
    ids, filepaths = samples.values(["id", "filepath"])
    labels = samples.values(f"{label_field}.label") if label_field else [None] * len(ids)
    columns = [samples.values(f) for f in fields]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "filepath", "label", *fields])
        for row in zip(ids, filepaths, labels, *columns):
            w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])


def export_vog_subset(
    view_or_saved_view_name,
    export_dir,
    dataset=None,
    dataset_type: str = DEFAULT_EXPORT_TYPE,
    label_field: str = "ground_truth",
    vog_field: str = "vog",
    overwrite: bool = False,
    progress=None,
) -> str:
    """Export a view — e.g. the saved view ``vog-high`` — to ``export_dir``.

    Args:
        view_or_saved_view_name: a FiftyOne view or dataset, or the name of a saved view of
            ``dataset``.
        export_dir: the output directory; it must be new or empty unless ``overwrite``.
        dataset: the dataset (or its name) holding the saved view; only for a name.
        dataset_type:
          - ``"image-classification-dir"``: FiftyOne's ``ImageClassificationDirectoryTree`` —
            ``export_dir/<label>/<image>``, unlabeled samples under ``_unlabeled``.
          - ``"fiftyone"``: ``FiftyOneDataset`` — media and all fields (scores, flags, tags);
            ``fo.Dataset.from_dir(export_dir, dataset_type=fo.types.FiftyOneDataset)`` reads it.
          - ``"csv"``: ``export_dir/manifest.csv`` with columns ``id, filepath, label`` and every
            VoG field of the run (see :func:`vog_fields`), one row per sample in the view's
            order (the vog-* views are sorted by VoG); floats are written exactly (``repr``),
            missing values as empty cells. Media are not copied.
        label_field: the ``fo.Classification`` field giving the label.
        vog_field: the run key whose fields go into the CSV (``"csv"`` only: the FiftyOne
            dataset holds every field, the directory tree none).
        overwrite: replace an earlier export of ours in ``export_dir``: only the files and
            folders fiftyone-vog's ownership record lists as written there and that are unchanged
            since (not the marker ``.fiftyone-vog-export.json``, which is information only).
            Anything else there is kept and named in the result's ``warning``; one that is where
            the new export writes refuses it, before anything is removed. A non-empty directory
            the record lists no export in is refused whatever ``overwrite`` says; so are
            filesystem roots, the home and working directories and their ancestors, folders
            holding media of any dataset, and symbolic links.
        progress: FiftyOne's progress convention for the media exports.

    Returns:
        the export directory, or the manifest's path for ``"csv"``: a ``str`` whose
        ``num_samples`` is the number of samples exported.

    ``export_dir`` itself is kept as it is (inode, mode, owner, group) or made: the export is
    built in a hidden folder inside it and moved into place when complete, so a failure leaves
    ``export_dir`` as it was; a write that fails (a full disk, no permission) raises
    :class:`VoGError` in one line. Every file and folder written is recorded (owner
    ``export:<id>``, with the dataset).
    """
    import fiftyone as fo

    if dataset_type not in DATASET_TYPES:
        raise VoGError(f"dataset_type={dataset_type!r} is not one of {', '.join(DATASET_TYPES)}")
    samples = resolve_view(view_or_saved_view_name, dataset)
    export_dir = _check_target(export_dir, overwrite, samples)
    if dataset_type != "fiftyone":
        check_classification_field(samples, label_field, f"dataset_type={dataset_type!r}")
    fields = vog_fields(samples, vog_field) if dataset_type == "csv" else []
    if dataset_type == "csv" and not fields:
        raise VoGError(
            f"no VoG field {vog_field!r} on {samples._dataset.name!r}; run fov.compute_vog first or pass vog_field="
        )

    num = len(samples)
    try:
        st = stage(export_dir, samples._dataset)  # the directory kept as it is, or made; a hidden folder in it
    except OSError as e:
        raise VoGError(describe_os_error(e, export_dir)) from None
    try:
        if dataset_type == "csv":
            os.mkdir(st.build)
            _write_csv(samples, os.path.join(st.build, MANIFEST_NAME), label_field, fields)
        else:
            kind = "FiftyOneDataset" if dataset_type == "fiftyone" else "ImageClassificationDirectoryTree"
            samples.export(
                export_dir=st.build,  # a new folder, so no overwrite: FiftyOne's also removes empty parents
                dataset_type=getattr(fo.types, kind),
                label_field=None if dataset_type == "fiftyone" else label_field,
                export_media=True,
                overwrite=False,
                progress=progress,
            )
        info = dict(dataset=samples._dataset.name, dataset_type=dataset_type, num_samples=num)
        warning = commit(st, overwrite, info)  # nothing fiftyone-vog did not write is removed or replaced
    except OSError as e:
        raise VoGError(describe_os_error(e, export_dir, _abandon(st))) from None
    except BaseException:
        note = _abandon(st)
        if note:
            logger.warning(note)
        raise
    if warning:
        logger.warning(warning)
    out = ExportResult(os.path.join(export_dir, MANIFEST_NAME) if dataset_type == "csv" else export_dir)
    out.num_samples, out.export_dir, out.warning = num, export_dir, warning
    return out
