"""The paper's memorization audit: give a seeded fraction of samples a wrong label, flag them.

Train on the shuffled labels, compute VoG, and the flagged samples — which the network can only
memorize — should score higher (PAPER.md, Fig. 8). :func:`restore_labels` undoes it.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import ownership
from ..errors import VoGError
from ..inputs.labels import check_classification_field, declared_classes
from ..options import DEFAULT_SEED, SHUFFLE_MODES, OptionError, check_seed

MODES = SHUFFLE_MODES
#: the label field whose flag keeps the historic name ``label_shuffled`` (saved views, DESIGN.md)
DEFAULT_LABEL_FIELD = "ground_truth"
#: key of the field ``info`` that also says which label field's audit a flag / backup field belongs to
#: (what versions before the ownership record read; :func:`~fiftyone_vog.core.ownership.adopt_legacy`
#: takes such fields over)
INFO_KEY = "fiftyone_vog_shuffle"
#: the roles of the audit's two fields in the ownership record (owner ``shuffle:<label_field>``)
FLAG, ORIGINAL = "flag", "original"
_ROLE_WORDS = {FLAG: "flag field", ORIGINAL: "original-label field"}


def _original_field(label_field, original_field):
    return original_field or f"{label_field}_original"


def default_flag_field(label_field: str) -> str:
    """The flag field of ``label_field``'s audit: ``label_shuffled`` for ``ground_truth`` (the name
    the saved view ``vog-shuffled-labels`` reads by default), else ``{label_field}_shuffled``."""
    return "label_shuffled" if label_field == DEFAULT_LABEL_FIELD else f"{label_field}_shuffled"


def audit_owner(samples, name: str) -> str | None:
    """The label field whose shuffle wrote field ``name`` (by the ownership record), or None when
    no shuffle did (a field of someone else, a VoG run's, or absent)."""
    e = ownership.entry(samples._dataset, ownership.FIELD, name) if name else None
    kind, _, label_field = e.owner.partition(":") if e else ("", "", None)
    return label_field if kind == "shuffle" else None


def _audit_entry(samples, name: str):
    """The ownership record of field ``name`` when a shuffle wrote it, else None."""
    e = ownership.entry(samples._dataset, ownership.FIELD, name) if name else None
    return e if e is not None and e.owner.startswith("shuffle:") else None


def backup_fields(samples) -> set[str]:
    """Fields that hold an audit's original labels (recorded as such, or named ``{x}_original``
    beside a Classification field ``x`` and holding Classifications): not label fields to offer."""
    import fiftyone as fo

    schema = samples._dataset.get_field_schema(embedded_doc_type=fo.Classification)
    recorded = {e.name for e in ownership.listing(samples._dataset, kind=ownership.FIELD) if e.role == ORIGINAL}
    return {
        name
        for name in schema
        if name in recorded or (name.endswith("_original") and name[: -len("_original")] in schema)
    }


def label_fields(samples) -> list[str]:
    """The ``fo.Classification`` fields of ``samples`` that are labels (the audits' backups left out)."""
    import fiftyone as fo

    backups = backup_fields(samples)
    schema = samples.get_field_schema(embedded_doc_type=fo.Classification)
    return sorted(k for k in schema if not k.startswith("_") and k not in backups)


#: How a message tells the user to overwrite or restore: from Python/CLI, or in the App's form.
HINTS = {
    "api": {
        "overwrite": "pass overwrite=True (CLI: --overwrite) to restore and shuffle again, or undo it with "
        "fov.restore_labels(dataset, label_field={lf!r}) (CLI: --restore)",
        "flag_field": "pass flag_field= (CLI: --flag-field)",
        "original_field": "pass original_field= (CLI: --original-field)",
    },
    "app": {
        "overwrite": "tick 'Overwrite' to restore and shuffle again, or choose the Action 'restore'",
        "flag_field": "type another name in 'Flag field'",
        "original_field": "type another name in 'Original-label field'",
    },
}


def shuffle_problem(samples, label_field, flag_field, original_field, overwrite, hints="api"):
    """Why shuffling ``label_field`` with these field names cannot start: ``(param, message)``, or
    None. ``param`` names the input at fault (``label_field``, ``flag_field``, ``original_field``)."""
    from ..core.naming import why_invalid

    h = HINTS[hints]
    for param, name in (("flag_field", flag_field), ("original_field", original_field)):
        why = why_invalid(name)
        if why is not None:
            return param, f"{param}={name!r} is {why}; {h[param]}"
    if len({label_field, flag_field, original_field}) < 3:
        return "flag_field", "label_field, flag_field and original_field must be three different fields"
    ds = samples._dataset
    schema = ds.get_field_schema()
    e = _audit_entry(ds, label_field)
    if e is not None:
        of = e.owner.partition(":")[2]
        return "label_field", (
            f"field {label_field!r} is the {_ROLE_WORDS.get(e.role, 'field')} of the shuffle of {of!r}; shuffling it "
            f"would make restoring {of!r} write wrong labels: shuffle {of!r} itself, or restore it first"
        )
    for param, role, name in (("flag_field", FLAG, flag_field), ("original_field", ORIGINAL, original_field)):
        if name in schema:
            problem = _not_the_audits(ds, name, label_field, role, h[param], "overwrites")
            if problem is not None:
                return param, problem
    existing = [f for f in (flag_field, original_field) if f in schema]
    if existing and not overwrite:
        return "label_field", (
            f"the labels of {label_field!r} look already shuffled on {ds.name!r} (field "
            f"{existing[0]!r} exists); " + h["overwrite"].format(lf=label_field)
        )
    return None


def _not_the_audits(ds, name, label_field, role, hint, verb) -> str | None:
    """Why the existing field ``name`` is not the ``role`` field of ``label_field``'s shuffle by the
    ownership record (one line, ending in ``hint``), or None when it is. ``verb``: what the caller
    would do to it ("overwrites": shuffle; else a restore)."""
    e = ownership.entry(ds, ownership.FIELD, name)
    if e is None:
        return (
            f"field {name!r} exists and was not written by fiftyone-vog's shuffle of {label_field!r}; "
            f"it never {verb} it: {hint}"
        )
    if e.owner != ownership.shuffle_owner(label_field):
        if e.owner.startswith("shuffle:"):
            of = e.owner.partition(":")[2]
            if verb != "overwrites" and role == FLAG and e.role == FLAG:
                return f"field {name!r} flags the shuffle of {of!r}, not of {label_field!r}; restore {of!r} to clear it, or {hint}"
            if verb != "overwrites" and role == ORIGINAL and e.role == ORIGINAL:
                return f"field {name!r} keeps the original labels of {of!r}, not of {label_field!r}; {hint}"
            return f"field {name!r} belongs to the shuffle of {of!r}, not of {label_field!r}; {hint}"
        return f"field {name!r} belongs to {ownership.describe_owner(e.owner)}, not to the shuffle of {label_field!r}; {hint}"
    if e.role != role:
        return f"field {name!r} is the {_ROLE_WORDS.get(e.role, e.role)} of the shuffle of {label_field!r}, not its {_ROLE_WORDS[role]}; {hint}"
    return None


def _check_label_field(samples, label_field):
    check_classification_field(samples, label_field, "shuffle_labels")


def _class_list(samples, label_field, present):
    classes = declared_classes(samples, label_field) or sorted(set(present))
    missing = sorted(set(present) - set(classes))
    if missing:  # labels outside the declared classes still count as classes to shuffle among
        classes = list(classes) + missing
    return list(classes)


def shuffle_labels(
    dataset,
    fraction: float = 0.2,
    label_field: str = "ground_truth",
    seed: int | None = DEFAULT_SEED,
    flag_field: str | None = None,
    original_field: str | None = None,
    overwrite: bool = False,
    mode: str = SHUFFLE_MODES[0],
) -> dict:
    """Replace the labels of a seeded random fraction of the labeled samples with wrong ones.

    Of the ``n`` samples of ``dataset`` whose ``label_field`` has a label, ``m = round(fraction
    × n)`` (halves round up) are drawn with ``numpy.random.default_rng(seed)`` in the
    collection's order. Then, by ``mode``:

      - ``"random-class"`` (default): each drawn sample gets a class drawn uniformly from the
        *other* classes (the dataset's ``classes[label_field]``, else ``default_classes``, else
        the labels present). Every drawn sample really changes label, so exactly ``m`` are
        flagged — the audit's "shuffled" group has no clean samples hiding in it.
      - ``"permute"``: the drawn samples' labels are randomly permuted among themselves, which
        keeps the label histogram; a sample that draws its own class keeps it and is not
        flagged, so ``shuffled <= m``.

    Writes, in bulk, on every labeled sample of ``dataset``: ``original_field`` (default
    ``f"{label_field}_original"``, a copy of the ``fo.Classification``), the boolean
    ``flag_field`` (True exactly where the label changed, else False); and the new ``label``
    of ``label_field`` on the changed samples (their other attributes and label id are kept).
    Unlabeled samples and samples outside a view are not touched.

    Args:
        dataset: a FiftyOne dataset or view (only its samples are shuffled).
        fraction: share of the labeled samples to draw, ``0 <= fraction <= 1``.
        label_field: the ``fo.Classification`` field to shuffle.
        seed: RNG seed; the same seed on the same samples gives the same shuffle.
        flag_field: boolean field marking the samples whose label changed; default
            :func:`default_flag_field` — ``label_shuffled`` for ``ground_truth``, else
            ``{label_field}_shuffled``, so that each label field's audit has its own flag.
        original_field: where the original labels are kept.
        overwrite: if the labels were already shuffled (``flag_field`` or ``original_field``
            exists), restore them with :func:`restore_labels` and shuffle again; otherwise raise.
            A flag or backup field that belongs to another label field's audit is never reused.
        mode: ``"random-class"`` or ``"permute"``, see above.

    Both fields record in their ``info`` which label field's audit they belong to
    (:func:`audit_owner`); :func:`restore_labels` refuses a flag of another label field.

    Returns:
        ``{"labeled", "selected", "shuffled", "unlabeled", "samples" (in ``dataset``), "view"
        (whether ``dataset`` is a view), "fraction", "seed", "mode", "label_field", "flag_field",
        "original_field", "changed": {old_label: count}}``.

    Nothing is left half-written: on failure the fields created are deleted and labels restored.
    """
    import fiftyone as fo

    original_field = _original_field(label_field, original_field)
    if mode not in MODES:
        raise VoGError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise VoGError(f"fraction must be a number in [0, 1], got {fraction!r}") from None
    if not 0 <= fraction <= 1:
        raise VoGError(f"fraction must be in [0, 1], got {fraction:g}; e.g. 0.2 for the paper's 20%")
    if seed is not None:  # None: numpy's fresh entropy (documented); anything else a whole number ≥ 0
        try:
            seed = check_seed(seed)
        except OptionError as e:
            raise VoGError(str(e)) from None
    _check_label_field(dataset, label_field)
    flag_field = flag_field or default_flag_field(label_field)
    problem = shuffle_problem(dataset, label_field, flag_field, original_field, overwrite)
    if problem is not None:
        raise VoGError(problem[1])

    ds = dataset._dataset
    schema = ds.get_field_schema()
    existing = [f for f in (flag_field, original_field) if f in schema]
    if existing:  # both the audit's own (shuffle_problem): restored and removed first
        restore_labels(ds, label_field=label_field, flag_field=flag_field, original_field=original_field)
        schema = ds.get_field_schema()
    for name in (flag_field, original_field):
        if name in schema:  # restore cleared it on this view only: samples elsewhere still hold it
            raise VoGError(
                f"field {name!r} still holds the earlier shuffle's values on samples outside this view; "
                f"restore {label_field!r} on the whole dataset first (fov.restore_labels(dataset, label_field={label_field!r}))"
            )

    labeled = dataset.exists(f"{label_field}.label")
    ids, labels = labeled.values(["id", f"{label_field}.label"])
    n = len(ids)
    unlabeled = len(dataset) - n
    m = int(math.floor(fraction * n + 0.5))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n, size=m, replace=False)) if m else np.zeros(0, dtype=int)

    new = list(labels)
    if mode == "random-class":
        classes = _class_list(dataset, label_field, labels)
        if m and len(classes) < 2:
            raise VoGError(f"{label_field!r} has {len(classes)} class; shuffling needs at least 2")
        index = {c: i for i, c in enumerate(classes)}
        for i in chosen:
            # uniform over the other classes: draw from K-1 and skip over the sample's own class
            j = int(rng.integers(len(classes) - 1))
            new[i] = classes[j + (j >= index[labels[i]])]
    else:
        perm = rng.permutation(chosen)
        for i, src in zip(chosen, perm):
            new[i] = labels[src]
    changed = [i for i in range(n) if new[i] != labels[i]]
    flags = [False] * n
    for i in changed:
        flags[i] = True

    originals = labeled.values(label_field)
    created = []
    owner = ownership.shuffle_owner(label_field)
    record = {"label_field": label_field, "flag_field": flag_field, "original_field": original_field}
    try:
        ds.add_sample_field(
            original_field,
            fo.EmbeddedDocumentField,
            embedded_doc_type=fo.Classification,
            info={INFO_KEY: {**record, "role": ORIGINAL}},
        )
        created.append(original_field)
        ownership.record(ds, ownership.FIELD, original_field, owner, role=ORIGINAL, options=record)
        labeled.set_values(original_field, dict(zip(ids, (c.copy() for c in originals))), key_field="id")
        ds.add_sample_field(flag_field, fo.BooleanField, info={INFO_KEY: {**record, "role": FLAG}})
        created.append(flag_field)
        ownership.record(ds, ownership.FIELD, flag_field, owner, role=FLAG, options=record)
        labeled.set_values(flag_field, dict(zip(ids, flags)), key_field="id")
        if changed:
            labeled.set_values(f"{label_field}.label", {ids[i]: new[i] for i in changed}, key_field="id")
    except BaseException:
        labeled.set_values(f"{label_field}.label", dict(zip(ids, labels)), key_field="id")
        for name in created:
            ownership.delete_field(ds, name, owner)
        raise

    by_class: dict[str, int] = {}
    for i in changed:
        by_class[labels[i]] = by_class.get(labels[i], 0) + 1
    return {
        "labeled": n,
        "selected": m,
        "shuffled": len(changed),
        "unlabeled": unlabeled,
        "samples": len(dataset),
        "view": len(dataset) != len(ds),  # fewer samples than the dataset (a view, a selection)
        "fraction": fraction,
        "seed": seed,
        "mode": mode,
        "label_field": label_field,
        "flag_field": flag_field,
        "original_field": original_field,
        "changed": dict(sorted(by_class.items())),
    }


def restore_labels(
    dataset,
    label_field: str = "ground_truth",
    flag_field: str | None = None,
    original_field: str | None = None,
) -> dict:
    """Put back the labels :func:`shuffle_labels` replaced and remove its fields.

    ``flag_field`` defaults to the flag that the shuffle of ``label_field`` recorded on its
    ``original_field``, else :func:`default_flag_field`. A flag or backup field recorded as
    belonging to another label field's audit is refused, never cleared or deleted.

    Every sample of ``dataset`` that has an ``original_field`` gets that label back in
    ``label_field`` (the label's id and other attributes are kept). When no sample of the whole
    dataset still holds an original — the usual case — ``flag_field`` and ``original_field`` are
    deleted; when ``dataset`` is a view covering only part of the shuffled samples, they are
    cleared on its samples only.

    Returns:
        ``{"restored": samples whose label was put back, "checked": samples with an original,
        "deleted_fields": [...]}``.

    Raises:
        VoGError: neither field exists (nothing to restore).
    """
    original_field = _original_field(label_field, original_field)
    ds = dataset._dataset
    flag_field, problem = restore_problem(ds, label_field, flag_field, original_field)
    if problem is not None:
        raise VoGError(problem[1])
    schema = ds.get_field_schema()
    restored = checked = 0
    if original_field in schema:
        _check_label_field(dataset, label_field)
        kept = dataset.exists(f"{original_field}.label")
        ids, orig, current = kept.values(["id", f"{original_field}.label", f"{label_field}.label"])
        checked = len(ids)
        back = {i: o for i, o, c in zip(ids, orig, current) if o != c}
        if back:
            kept.set_values(f"{label_field}.label", back, key_field="id")
        restored = len(back)

    present = [name for name in (flag_field, original_field) if name in schema]
    # samples outside `dataset` still holding a flag or an original (dataset is a view of ds)
    elsewhere = sum(len(ds.exists(name)) - len(dataset.exists(name)) for name in present)
    deleted = []
    owner = ownership.shuffle_owner(label_field)
    for name in present:  # both the audit's own (restore_problem)
        if elsewhere:
            dataset.set_values(name, [None] * len(dataset))
        else:
            ownership.delete_field(ds, name, owner)
            deleted.append(name)
    return {"restored": restored, "checked": checked, "deleted_fields": deleted}


def restore_problem(samples, label_field, flag_field, original_field, hints="api"):
    """``(flag_field, problem)``: the flag that a restore of ``label_field`` clears (the one its
    shuffle recorded, else :func:`default_flag_field`), and why it cannot (``(param, message)``) or
    None. Both fields, where they exist, must be the ones the ownership record lists as that
    shuffle's flag and original-label fields: a restore writes ``label_field`` from the one and
    deletes both."""
    original_field = _original_field(label_field, original_field)
    ds = samples._dataset
    schema = ds.get_field_schema()
    h = HINTS[hints]
    if original_field in schema:
        problem = _not_the_audits(ds, original_field, label_field, ORIGINAL, h["original_field"], "restores from")
        if problem is not None:
            return flag_field or default_flag_field(label_field), ("original_field", problem)
    e = ownership.entry(ds, ownership.FIELD, original_field) if original_field in schema else None
    recorded = (e.options or {}).get("flag_field") if e is not None else None
    flag_field = flag_field or recorded or default_flag_field(label_field)
    if flag_field in schema:
        problem = _not_the_audits(ds, flag_field, label_field, FLAG, h["flag_field"], "deletes")
        if problem is not None:
            return flag_field, ("flag_field", problem)
    if recorded and flag_field != recorded and flag_field in schema:
        return flag_field, (
            "flag_field",
            f"the shuffle of {label_field!r} flagged its samples in {recorded!r}, not "
            f"{flag_field!r}; leave the flag field empty or {h['flag_field']}",
        )
    if original_field not in schema and flag_field not in schema:
        return flag_field, (
            "label_field",
            f"nothing to restore on {ds.name!r}: neither {original_field!r} nor "
            f"{flag_field!r} exists (were the labels of {label_field!r} shuffled "
            "with other field names?)",
        )
    return flag_field, None
