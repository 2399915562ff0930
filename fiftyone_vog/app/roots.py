"""Which server folders an App user may name: checkpoints read, exports written.

An App user types paths that the *server* reads and writes. The operators accept only paths
inside the server owner's roots: ``FIFTYONE_VOG_APP_ROOTS`` (environment variable or plugin
secret, folders separated by ``os.pathsep``). Unset, the roots are

- the directory the App was launched from (:func:`launch_dir`), and
- the folder above the current dataset's media (``out/`` for media in ``out/images/``),

each left out when it is a filesystem root, the home directory or an ancestor of it: those
would open everything. Outside the roots every path gets the same message, whether it exists or
not, and nothing is read. The Python API and the CLI are not confined: their users already
have the filesystem.
"""

from __future__ import annotations

import glob
import os

from ..core.ownership import export_dir_name
from ..errors import VoGError, check_path_text

APP_ROOTS = "FIFTYONE_VOG_APP_ROOTS"


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def _is_within(path: str, parent: str) -> bool:
    try:
        return os.path.commonpath([path, parent]) == parent
    except ValueError:
        return False


def _too_wide(path: str) -> bool:
    """A filesystem root, the home directory or an ancestor of it."""
    home = _norm("~")
    return os.path.dirname(path) == path or _is_within(home, path)


def server_setting(ctx, name: str) -> str | None:
    """A setting of the server's owner: the plugin secret ``name`` (FiftyOne reads secrets from the
    server's environment or its secrets backend), else the environment variable."""
    value = None
    if ctx is not None:
        try:
            value = ctx.secret(name)
        except Exception:  # no secrets backend: fall back to the environment
            value = None
    return os.environ.get(name) if value is None else value


def _configured(ctx) -> str | None:
    value = server_setting(ctx, APP_ROOTS)
    return value if value and str(value).strip() else None


def _media_parent(dataset) -> str | None:
    """The folder above the deepest folder that holds all of the dataset's (local) media.

    The smallest and largest filepaths share the prefix every filepath shares, and both come
    from the ``filepath`` index: no scan of the dataset.
    """
    if dataset is None or not len(dataset):
        return None
    first = dataset.sort_by("filepath").limit(1).values("filepath")
    last = dataset.sort_by("filepath", reverse=True).limit(1).values("filepath")
    if not first or not last or "://" in first[0] or "://" in last[0]:
        return None
    common = os.path.commonprefix([first[0], last[0]])
    common = common if common.endswith(os.sep) else os.path.dirname(common)
    return os.path.dirname(_norm(common)) if common else None


def launch_dir() -> str:
    """Where the App was started: the working directory, unless that is FiftyOne's own package
    folder (``fiftyone app launch`` / ``fo.launch_app`` run the server there), then ``$PWD``, the
    directory of the shell that launched it."""
    cwd = os.getcwd()
    try:
        import fiftyone

        package = os.path.dirname(os.path.realpath(fiftyone.__file__))
    except Exception:  # fiftyone not importable: nothing to skip
        return cwd
    if _is_within(os.path.realpath(cwd), package):
        pwd = os.environ.get("PWD")
        if pwd and os.path.isabs(pwd) and os.path.isdir(pwd) and not _is_within(os.path.realpath(pwd), package):
            return _norm(pwd)
        return ""
    return cwd


def app_roots(ctx) -> list[str]:
    """The folders App users may use on this server (resolved), in the order given."""
    configured = _configured(ctx)
    if configured is not None:
        roots = [_norm(r) for r in str(configured).split(os.pathsep) if r.strip()]
    else:
        roots = [r for r in (launch_dir(),) if r]
        try:
            parent = _media_parent(getattr(ctx, "dataset", None))
        except Exception:  # no dataset in this context
            parent = None
        if parent:
            roots.append(parent)
        roots = [r for r in roots if not _too_wide(os.path.realpath(r))]
    out = []
    for r in roots:
        real = os.path.realpath(r)
        if real not in out:
            out.append(real)
    return out


def outside_message(what: str, path, roots: list[str]) -> str:
    """The one message for every path outside the roots: it says nothing about the file."""
    where = ", ".join(roots) if roots else "none are set"
    return (
        f"{what} {str(path)!r} is outside the folders the App may use on this server ({where}); "
        f"choose a path inside one of them, or ask the server's owner to add its folder to {APP_ROOTS}"
    )


def _written(path: str) -> str:
    """``path`` made absolute as the OS reads it: ``..`` is not collapsed, since after a link it
    leads to the link target's parent (``normpath`` would drop the link and its ``..`` both)."""
    return os.path.join(os.getcwd(), os.path.expanduser(str(path)))


def _inside(path: str, roots: list[str]) -> bool:
    """``path`` lies inside a root as written, with its links resolved as the OS resolves them
    (a ``..`` after a link included), and in the normalized form that callers go on to use."""
    lexical = _norm(path)
    forms = {os.path.realpath(_written(path)), os.path.realpath(lexical)}
    return any(_is_within(lexical, r) or _is_within(lexical, _norm(r)) for r in roots) and all(
        any(_is_within(real, r) for r in roots) for real in forms
    )


def _glob_stays_inside(pattern: str, roots: list[str]) -> bool:
    """Whether a glob reaches only folders and files inside the roots, expanded one part at a
    time (as :func:`glob.glob` does), so that no folder outside is ever listed: every folder it
    would list and every match is checked, links resolved, before the next part is expanded."""
    parts = _written(pattern).split(os.sep)
    first = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    current = [os.sep.join(parts[:first]) or os.sep]
    for i, part in enumerate(parts[first:], start=first):
        if not all(_inside(d, roots) for d in current):
            return False
        if not part:  # '//' or a trailing '/'
            continue
        found = [f for d in current for f in glob.glob(os.path.join(glob.escape(d), part))]
        current = found if i == len(parts) - 1 else [f for f in found if os.path.isdir(f)]
    return all(_inside(f, roots) for f in current)


def check_app_path(ctx, path, what: str = "path", roots: list[str] | None = None) -> str:
    """``path`` absolute with the links above its last name resolved, or :class:`VoGError` when it
    is outside the App roots."""
    text = check_path_text(what, path)
    roots = app_roots(ctx) if roots is None else roots
    if not _inside(text, roots):
        raise VoGError(outside_message(what, path, roots))
    return export_dir_name(os.path.expanduser(str(path)))  # as the OS resolves it (links before ``..``)


def check_app_checkpoints(ctx, spec) -> list[str] | None:
    """Confine a checkpoint spec (glob, directory, file, or list) from the App to the roots.

    Checked before anything is listed or opened (a glob part by part, each folder it lists and
    each match, links resolved; each named file or folder), then again for every file it
    resolves to (a link inside a root may point out), and for a Hugging Face checkpoint folder
    every file in it that a run reads. Returns the resolved files (or folders) in order, or None
    for an empty spec.
    """
    from ..inputs import hf
    from ..inputs.checkpoints import checkpoint_entries, resolve_checkpoints

    if spec is None or spec == "":
        return None
    entries = checkpoint_entries(spec)  # a glob, folder or file, or a list of files: nothing else
    roots = app_roots(ctx)
    for entry in entries:
        if not (_glob_stays_inside(entry, roots) if glob.has_magic(entry) else _inside(entry, roots)):
            raise VoGError(outside_message("checkpoints", spec if isinstance(spec, str) else entry, roots))
    paths = resolve_checkpoints(spec)
    for p in paths:
        # a Hugging Face checkpoint folder: the files the run reads in it, whose links may point out too
        for f in hf.folder_files(p) if hf.is_checkpoint_folder(p) else [p]:
            if not _inside(str(p), roots) or not _inside(str(f), roots):
                raise VoGError(outside_message("checkpoints", spec if isinstance(spec, str) else p, roots))
    return [str(p) for p in paths]
