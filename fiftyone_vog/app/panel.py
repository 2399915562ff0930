"""The VoG panel: where a view's samples fall in the VoG ranking.

The numbers come from :mod:`fiftyone_vog.analysis.summary` (histogram, decile table, class
means) and :mod:`fiftyone_vog.analysis.detectors`; the panel only reads the view's values, calls
them, and draws the results with Plotly (:func:`slice_bounds` maps a clicked bar to its range).
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.core.view as fov_view
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

# the numbers the panel draws are computed in fiftyone_vog.analysis (names kept here for callers)
from ..analysis.binned import NO_ERRORS_NOTE
from ..analysis.detectors import score_verdict
from ..analysis.summary import (  # noqa: F401
    NUM_BINS,
    NUM_DECILES,
    class_means,
    classification_errors,
    decile_of,
    decile_table,
    describe,
    finite,
    histogram,
)
from ..options import DEFAULTS


# -- what the panel shows --------------------------------------------------------------
def slice_bounds(stats: dict, chart: str, index: int) -> tuple[float, float] | None:
    """The closed score range ``[lo, hi]`` behind bar ``index`` of ``chart`` ("histogram" or "deciles")."""
    if chart == "histogram":
        edges = stats.get("histogram", {}).get("edges", [])
        if 0 <= index < len(edges) - 1:
            return float(edges[index]), float(edges[index + 1])
    elif chart == "deciles":
        rows = stats.get("deciles", [])
        if 0 <= index < len(rows):
            return rows[index]["lo"], rows[index]["hi"]
    return None


def pick_vog_field(samples, fields, current=None):
    """The VoG field the panel shows for ``samples``: ``current`` (the user's pick) while it scores
    at least one of them, else the first of ``fields`` (the runs, the one made last first) that
    scores one, else ``vog``; None without fields. The demo's OOD view is scored in ``vog_test``
    only: showing ``vog`` there would draw empty axes over "0 samples scored"."""
    fields = list(fields)
    if not fields:
        return None
    if current in fields and samples.count(current) > 0:
        return current
    default = DEFAULTS["vog_field"]
    return next((f for f in fields if samples.count(f) > 0), default if default in fields else fields[0])


def view_stats(samples, vog_field: str, label_field: str | None = None, pred_field: str | None = None) -> dict:
    """Everything the panel draws, for one view: read the values once, then the pure functions."""
    # class means of a class-normalized score are 0 by construction: use the raw score for them
    from ..core.naming import score_fields

    beside = score_fields(samples, vog_field)
    raw_field = beside.raw_or_score
    fields = [vog_field, raw_field]
    if label_field:
        fields.append(f"{label_field}.label")
    if pred_field:
        fields.append(f"{pred_field}.label")
    values = samples.values(fields)
    scores, mask = finite(values[0])
    raw, _ = finite([r if m else None for r, m in zip(values[1], mask)])
    labels = [v for v, m in zip(values[2], mask) if m] if label_field else None
    preds = [v for v, m in zip(values[-1], mask) if m] if pred_field else None
    errors = classification_errors(labels, preds) if labels is not None and preds is not None else None
    return {
        "vog_field": vog_field,
        "label_field": label_field,
        "pred_field": pred_field,
        "count": int(scores.size),
        # error rates are over the scored samples that have both a label and a prediction
        "labeled": sum(e is not None for e in errors) if errors is not None else 0,
        "missing": int((~mask).sum()),
        "mean": describe(scores)["mean"],
        "histogram": histogram(scores),
        "deciles": decile_table(scores, errors),
        "class_field": raw_field,
        "classes": class_means(raw, labels) if labels is not None and raw.size == scores.size else [],
        "detectors": (tables := detector_tables(samples, vog_field, label_field, pred_field)),
        "verdict": score_verdict({t["kind"]: t for t in tables}, beside),
    }


def detector_tables(samples, vog_field, label_field=None, pred_field=None) -> list[dict]:
    """``[{"flag", "kind", "rows", "k", "n", "n_flagged"}]``: VoG and its companions side by side for
    each flag the view has (the ``label_shuffled`` field, the ``ood`` tag, misclassified), best
    first; ``kind`` is the question the flag answers (``"label-errors"``, ``"ood"``, ``"misclassified"``)."""
    from ..analysis import detector_table_from_view

    schema = samples.get_field_schema()
    flags = []
    if isinstance(schema.get("label_shuffled"), fo.BooleanField):
        flags.append(("label-errors", "shuffled labels", dict(flag_field="label_shuffled")))
    if samples.count_sample_tags().get("ood"):
        flags.append(("ood", "ood tag", dict(tag="ood")))
    if label_field and pred_field:
        flags.append(
            ("misclassified", f"misclassified ({pred_field})", dict(misclassified=pred_field, label_field=label_field))
        )
    out = []
    for kind, name, kw in flags:
        try:  # a flag with one class or no overlap with the scores is left out, never an error
            t = detector_table_from_view(samples, vog_field, **kw)
        except Exception:
            continue
        if 0 < t.n_flagged < t.n:
            out.append(
                {"flag": name, "kind": kind, "rows": t.to_dict()["rows"], "k": t.k, "n": t.n, "n_flagged": t.n_flagged}
            )
    return out


def detectors_markdown(tables: list[dict]) -> str:
    """The detector tables as markdown (best first)."""
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    parts = []
    for t in tables:
        lines = [
            f"**{t['flag']}**: {t['n_flagged']} of {t['n']} flagged (precision@k at k = {t['k']})",
            "",
            "| score | flags | AUROC | AUPRC | precision@k |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['score']} | {r['direction']} | {f(r['auroc'])} | {f(r['auprc'])} | {f(r['precision_at_k'])} |"
            for r in t["rows"]
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# -- the panel -----------------------------------------------------------------------


class VoGPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="vog_panel",
            label="VoG",
            icon="insights",
            help_markdown="Variance of Gradients: histogram, error by VoG decile and per-class mean. "
            "Click a bar to load that slice, hardest first.",
            surfaces="grid",
        )

    # state: vog_field, pred_field, stats (for the base view), base (serialized view), slice
    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_view(self, ctx):
        view = ctx.request_params.get("view")
        if _same_view(view, ctx.panel.state.slice_view):
            return  # the panel set this slice: keep the statistics of the view it came from
        if ctx.panel.state.stats and _same_view(view or [], ctx.panel.state.base_view):
            # a late event for the view the statistics already describe: recomputing from this
            # event's (possibly older) state could undo a field the user has just picked; only
            # the list of runs is re-read (the App sends this after a Compute VoG reloads it)
            self._reread_runs(ctx)
            return
        ctx.panel.state.slice_view = None
        ctx.panel.state.slice = None
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        ctx.panel.state.vog_field = None
        ctx.panel.state.pred_field = None
        self._refresh(ctx)

    def on_change_vog_field(self, ctx):
        ctx.panel.state.vog_field = ctx.params.get("value")
        self._refresh(ctx)

    def on_change_pred_field(self, ctx):
        ctx.panel.state.pred_field = ctx.params.get("value") or None
        self._refresh(ctx)

    def on_click_refresh(self, ctx):
        self._refresh(ctx)

    def _reread_runs(self, ctx):
        from ..core.compute import list_vog_runs

        runs = list_vog_runs(ctx.dataset) if ctx.dataset is not None else []
        if runs != list(ctx.panel.state.runs or []):
            if ctx.panel.state.vog_field in runs:
                ctx.panel.state.runs = runs
            else:
                self._refresh(ctx)

    def _refresh(self, ctx):
        from ..core.compute import get_vog_run, list_vog_runs
        from ..core.runs import newest_runs

        ds = ctx.dataset
        runs = list_vog_runs(ds) if ds is not None else []
        state = ctx.panel.state
        if not runs:
            state.set({"runs": [], "stats": None})
            return
        vog_field = pick_vog_field(ctx.view, newest_runs(ds, runs), state.vog_field)
        label_field = get_vog_run(ds, vog_field).config.label_field
        schema = ds.get_field_schema(embedded_doc_type=fo.Classification)
        label_field = label_field if label_field in schema else None
        from ..audit.shuffle import backup_fields

        backups = backup_fields(ds)  # the label-shuffling audit's copies of the labels are no predictions
        preds = sorted(f for f in schema if f != label_field and f not in backups)
        pred_field = state.pred_field
        if pred_field not in preds:
            pred_field = next((f for f in preds if "pred" in f), preds[0] if preds else None)
        stats = view_stats(ctx.view, vog_field, label_field, pred_field)
        state.set(
            {
                "runs": runs,
                "preds": preds,
                "vog_field": vog_field,
                "pred_field": pred_field,
                "stats": stats,
                "base_view": ctx.request_params.get("view") or [],
            }
        )

    def _load_slice(self, ctx, chart):
        stats = ctx.panel.state.stats or {}
        idx = ctx.params.get("idx")
        if idx is None:
            idx = ctx.params.get("data", {}).get("idx") if isinstance(ctx.params.get("data"), dict) else None
        bounds = slice_bounds(stats, chart, int(idx)) if idx is not None else None
        if bounds is None:
            return
        field = stats["vog_field"]
        lo, hi = bounds
        view = _base_view(ctx).match((F(field) >= lo) & (F(field) <= hi)).sort_by(field, reverse=True)
        ctx.panel.state.slice = {"chart": chart, "index": int(idx), "lo": lo, "hi": hi, "count": len(view)}
        ctx.panel.state.slice_view = _strip_uuids(view._serialize())
        ctx.ops.set_view(view)

    def on_click_histogram(self, ctx):
        self._load_slice(ctx, "histogram")

    def on_click_deciles(self, ctx):
        self._load_slice(ctx, "deciles")

    def clear_slice(self, ctx):
        ctx.panel.state.slice = None
        ctx.panel.state.slice_view = None
        ctx.ops.set_view(_base_view(ctx))

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        stats = state.stats
        if not stats:
            panel.md(
                "### No VoG scores yet\n\nRun **Compute VoG** from the operator browser "
                "(press `` ` ``), then reopen this panel.",
                name="empty",
            )
            return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))
        row = panel.h_stack("controls", gap=2)
        _select(row, "vog_field", state.runs or [], stats["vog_field"], "VoG field", self.on_change_vog_field)
        if state.preds:
            _select(row, "pred_field", state.preds, stats["pred_field"], "Prediction field", self.on_change_pred_field)
        row.btn("refresh", label="Refresh", on_click=self.on_click_refresh, variant="outlined")
        edges = stats["histogram"]["edges"]
        span = f" ({stats['vog_field']} from {edges[0]:.3g} to {edges[-1]:.3g})" if edges else ""
        summary = f"**{stats['count']}** samples scored in this view{span}"
        if stats["missing"]:
            summary += f"; {stats['missing']} without a score"
        sl = state.slice
        if sl:
            summary += f"  \nShowing {sl['count']} samples with {sl['lo']:.3g} ≤ {stats['vog_field']} ≤ {sl['hi']:.3g}"
        panel.md(summary, name="summary")
        if sl:
            panel.btn("clear_slice", label="Back to the full view", on_click=self.clear_slice, variant="outlined")
        panel.plot(
            "histogram",
            data=_histogram_traces(stats),
            layout=_layout(f"{stats['vog_field']}: histogram (click a bar to load it)", stats["vog_field"], "samples"),
            on_click=self.on_click_histogram,
        )
        panel.plot("deciles", data=_decile_traces(stats), layout=_decile_layout(stats), on_click=self.on_click_deciles)
        if _no_errors(stats):
            panel.md(f"*{NO_ERRORS_NOTE}*", name="deciles_note")
        # the same one line as the report's summary; a stable element the browser walk reads
        if stats.get("verdict"):
            panel.md(stats["verdict"], name="verdict")
        if stats.get("detectors"):
            panel.md(
                "#### Detectors side by side (best first)\n\n" + detectors_markdown(stats["detectors"]),
                name="detectors",
            )
        if stats["classes"]:
            panel.plot("classes", data=_class_traces(stats), layout=_class_layout(stats))
        return types.Property(
            panel, view=types.GridView(orientation="vertical", gap=2, padding=1, height=100, width=100)
        )


def _select(obj, name, values, value, label, on_change):
    dd = types.DropdownView(label=label)
    for v in values:
        dd.add_choice(v, label=v)
    obj.str(name, default=value, view=dd, on_change=on_change)


def _base_view(ctx):
    stages = ctx.panel.state.base_view or []
    return fov_view.DatasetView._build(ctx.dataset, stages) if stages else ctx.dataset.view()


def _strip_uuids(stages):
    out = []
    for s in stages or []:
        s = dict(s)
        s.pop("_uuid", None)
        out.append(s)
    return out


def _same_view(a, b) -> bool:
    return b is not None and _strip_uuids(a) == _strip_uuids(b)


def _layout(title, xtitle, ytitle):
    # the title sits below plotly's toolbar (about 30 px at the top right), not under it
    return {
        "title": {
            "text": title,
            "font": {"size": 13},
            "x": 0,
            "xanchor": "left",
            "xref": "paper",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 34},
        },
        "xaxis": {"title": xtitle},
        "yaxis": {"title": ytitle},
        "margin": {"t": 64, "l": 50, "r": 10, "b": 40},
        "bargap": 0.05,
        "showlegend": False,
        "height": 280,
        "autosize": True,
    }


def _histogram_traces(stats):
    h = stats["histogram"]
    edges = h["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    return [
        {
            "type": "bar",
            "x": centers,
            "y": h["counts"],
            "name": "samples",
            "width": [(b - a) for a, b in zip(edges[:-1], edges[1:])],
            "marker": {"color": "#FF6D04"},
            "hovertemplate": "%{x:.3g}: %{y} samples<extra></extra>",
        }
    ]


def _decile_traces(stats):
    rows = stats["deciles"]
    x = [f"D{r['decile']}" for r in rows]
    if any(r["error_rate"] is not None for r in rows):
        return [
            {
                "type": "bar",
                "x": x,
                "y": [r["error_rate"] for r in rows],
                "name": "error rate",
                "marker": {"color": "#E0474C"},
                "customdata": [r["mean"] for r in rows],
                "hovertemplate": "%{x}: error %{y:.1%} (mean VoG %{customdata:.3g})<extra></extra>",
            }
        ]
    return [
        {
            "type": "bar",
            "x": x,
            "y": [r["mean"] for r in rows],
            "name": "mean VoG",
            "marker": {"color": "#499CEF"},
            "hovertemplate": "%{x}: mean VoG %{y:.3g}<extra></extra>",
        }
    ]


def _no_errors(stats) -> bool:
    """The error-rate chart is flat at zero: labeled samples, none misclassified."""
    rates = [r["error_rate"] for r in stats["deciles"] if r["error_rate"] is not None]
    return bool(rates) and not any(rates)


def _decile_layout(stats):
    has_errors = any(r["error_rate"] is not None for r in stats["deciles"])
    if has_errors:
        return _layout(
            f"error rate by {stats['vog_field']} decile ({stats['pred_field']} vs {stats['label_field']}; "
            f"over the {stats.get('labeled', 0)} labeled samples only)",
            "decile (D1 lowest VoG … D10 highest)",
            "error rate",
        )
    return _layout(
        f"mean {stats['vog_field']} by decile ({_why_no_error_rates(stats)})",
        "decile (D1 lowest … D10 highest)",
        "mean VoG",
    )


def _why_no_error_rates(stats) -> str:
    if not stats.get("pred_field"):
        return "add a prediction field for error rates"
    if not stats.get("label_field"):
        return "no error rates: the run's label field is not on the dataset"
    return (
        f"no error rates: no sample here has both a {stats['label_field']} label and a {stats['pred_field']} prediction"
    )


def _class_layout(stats):
    """Class names are categories even when they are digits ("0" … "9": plotly would read them as
    numbers, space them on a numeric axis and order the bars by value); highest mean first."""
    layout = _layout(f"mean {stats['class_field']} by class", "class", f"mean {stats['class_field']}")
    layout["xaxis"] = {
        **layout["xaxis"],
        "type": "category",
        "categoryorder": "array",
        "categoryarray": [str(r["label"]) for r in stats["classes"]],
    }
    return layout


def _class_traces(stats):
    rows = stats["classes"]
    return [
        {
            "type": "bar",
            "x": [str(r["label"]) for r in rows],
            "y": [r["mean"] for r in rows],
            "customdata": [r["count"] for r in rows],
            "marker": {"color": "#8F8F8F"},
            "hovertemplate": "%{x}: %{y:.3g} (%{customdata} samples)<extra></extra>",
        }
    ]
