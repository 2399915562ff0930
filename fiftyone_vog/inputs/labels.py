"""Label fields: the one check that a field holds ``fo.Classification`` labels, and where a
label field's class list comes from. FiftyOne is imported only inside the check; no torch."""

from __future__ import annotations

from ..errors import VoGError


def classification_fields(samples) -> list[str]:
    """The ``fo.Classification`` fields of ``samples``, in schema order."""
    import fiftyone as fo

    return list(samples.get_field_schema(embedded_doc_type=fo.Classification))


def check_classification_field(samples, label_field: str, needed_by: str = "") -> None:
    """Raise :class:`VoGError` unless ``label_field`` is a ``fo.Classification`` field of
    ``samples``; the message names the Classification fields there (``needed_by``: who needs one)."""
    import fiftyone as fo

    schema = samples.get_field_schema()
    why = f"; {needed_by} needs one" if needed_by else ""
    if label_field not in schema:
        fields = classification_fields(samples)
        hint = (
            f"pass label_field= one of its Classification fields: {', '.join(fields)}"
            if fields
            else "it has no Classification field"
        )
        raise VoGError(
            f"label field {label_field!r} does not exist: {samples._dataset.name!r} has no field "
            f"{label_field!r}{why}; {hint}"
        )
    field = schema[label_field]
    doc_type = getattr(field, "document_type", None)
    if not (isinstance(field, fo.EmbeddedDocumentField) and issubclass(doc_type, fo.Classification)):
        raise VoGError(
            f"label field {label_field!r} is {type(field).__name__}({getattr(doc_type, '__name__', '')}), "
            f"not a fo.Classification field{why}"
        )


def declared_classes(samples, label_field: str) -> list | None:
    """The class list a dataset declares for ``label_field``: ``dataset.classes[label_field]``, else
    its ``default_classes``; None when it declares none (callers then fall back to the labels)."""
    ds = samples._dataset
    return ds.classes.get(label_field) or ds.default_classes or None
