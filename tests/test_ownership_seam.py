"""One seam: no module but fiftyone_vog/core/ownership.py calls FiftyOne's destructive methods on
fields, saved views and indexes, so a new path that deletes, moves or overwrites one cannot bypass
the ownership record (it must call ``ownership.delete_field`` / ``delete_view`` / ``drop_index`` /
``save_view``, which ask the record first)."""

import ast
import pathlib

PKG = pathlib.Path(__file__).resolve().parents[1] / "fiftyone_vog"
SEAM = PKG / "core" / "ownership.py"

#: FiftyOne's methods that delete, move or overwrite a field, a saved view or an index.
FORBIDDEN = {
    "delete_sample_field",
    "delete_sample_fields",
    "_delete_sample_fields",
    "remove_dynamic_sample_field",
    "clear_sample_field",
    "clear_sample_fields",
    "_clear_sample_fields",
    "rename_sample_field",
    "rename_sample_fields",
    "_rename_sample_fields",
    "delete_frame_field",
    "delete_frame_fields",
    "clear_frame_field",
    "clear_frame_fields",
    "rename_frame_field",
    "rename_frame_fields",
    "delete_saved_view",
    "delete_saved_views",
    "update_saved_view_info",
    "drop_index",
}
#: Receivers whose methods of these names are the seam itself.
SEAM_NAMES = {"ownership", "own"}


def _receiver(node: ast.Attribute) -> str | None:
    return node.value.id if isinstance(node.value, ast.Name) else None


def _calls(path):
    """``(line, what)`` of each forbidden call in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, receiver = node.func.attr, _receiver(node.func)
        if receiver in SEAM_NAMES:
            continue
        if name in FORBIDDEN:
            yield node.lineno, name
        elif name == "save_view":
            # saving under a name that exists replaces that view: only the seam may (ownership.save_view)
            overwrite = next((k.value for k in node.keywords if k.arg == "overwrite"), None)
            if not (isinstance(overwrite, ast.Constant) and overwrite.value is False):
                yield node.lineno, "save_view(overwrite=...)"


def test_only_the_ownership_module_deletes_moves_or_overwrites_fields_views_and_indexes():
    found = [
        f"{path.relative_to(PKG.parent)}:{line} calls {what}"
        for path in sorted(PKG.rglob("*.py"))
        if path != SEAM
        for line, what in _calls(path)
    ]
    assert not found, "destructive calls outside core/ownership.py (go through the record):\n" + "\n".join(found)


def test_the_check_sees_a_bypass(tmp_path):
    """The check itself can fail: a module calling FiftyOne directly is found, the seam is not."""
    bad = tmp_path / "bypass.py"
    bad.write_text(
        "def f(ds):\n    ds.delete_sample_field('x')\n    ds.save_view('v', ds.view(), overwrite=True)\n"
        "    ownership.delete_field(ds, 'x')\n    ds.save_view('w', ds.view(), overwrite=False)\n"
    )
    assert list(_calls(bad)) == [(2, "delete_sample_field"), (3, "save_view(overwrite=...)")]
