"""Make FiftyOne discover the plugin of a pip / editable install.

FiftyOne loads plugins from folders holding a ``fiftyone.yml`` under its plugins
directory (``fo.config.plugins_dir``, env ``FIFTYONE_PLUGINS_DIR``). This package's
folder is such a plugin, so installing it there is a link (or a copy)::

    fiftyone-vog install-plugin            # or: python -m fiftyone_vog.cli install-plugin
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import VoGError
from ..options import PLUGIN_NAME  # the name fiftyone.yml declares

#: The folder created under the plugins directory.
INSTALL_NAME = "fiftyone-vog"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # fiftyone_vog/, where fiftyone.yml lives
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def default_plugins_dir() -> str:
    """FiftyOne's configured plugins directory, or ``~/fiftyone/__plugins__`` when unset."""
    import fiftyone as fo

    return fo.config.plugins_dir or os.path.join(os.path.expanduser("~"), "fiftyone", "__plugins__")


def install_plugin(plugins_dir: str | os.PathLike | None = None, mode: str = "link", overwrite: bool = False) -> str:
    """Install the plugin into ``plugins_dir`` and return the installed folder's path.

    Args:
        plugins_dir: FiftyOne's plugins directory (default: ``fo.config.plugins_dir``, or
            ``~/fiftyone/__plugins__`` when FiftyOne has none configured — then set
            ``FIFTYONE_PLUGINS_DIR`` to it, as the message says).
        mode: ``"link"`` (a symlink to this package: upgrades of the package apply at once)
            or ``"copy"`` (a snapshot, for file systems without symlinks).
        overwrite: replace an existing installation of a different source.

    Raises:
        VoGError: bad mode, or something else already at the target without ``overwrite``.
    """
    if mode not in ("link", "copy"):
        raise VoGError(f"mode={mode!r}: use 'link' or 'copy'")
    root = Path(plugins_dir or default_plugins_dir()).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise VoGError(
            f"plugins_dir {str(root)!r} is a file, not a directory; pass FiftyOne's plugins "
            "directory (CLI: --plugins-dir DIR) or leave it out for fo.config.plugins_dir"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VoGError(
            f"cannot create plugins_dir {str(root)!r} ({e.strerror}); choose a directory you can write"
        ) from None
    target = root / INSTALL_NAME
    if target.is_symlink() or target.exists():
        already = target.is_symlink() and target.resolve() == PACKAGE_DIR
        if already and mode == "link":
            return str(target)
        if not overwrite:
            raise VoGError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if target.is_symlink() or target.is_file():
            target.unlink()
        else:
            shutil.rmtree(target)
    if mode == "link":
        try:
            target.symlink_to(PACKAGE_DIR, target_is_directory=True)
        except OSError as e:
            raise VoGError(f"cannot create a symlink at {target} ({e}); use mode='copy' (CLI: --copy)") from None
    else:
        shutil.copytree(PACKAGE_DIR, target, ignore=_IGNORE)
    return str(target)


def uninstall_plugin(plugins_dir: str | os.PathLike | None = None) -> bool:
    """Remove an installation made by :func:`install_plugin`; True if something was removed."""
    target = Path(plugins_dir or default_plugins_dir()).expanduser() / INSTALL_NAME
    if target.is_symlink():
        target.unlink()
        return True
    if target.is_dir() and (target / "fiftyone.yml").is_file():
        shutil.rmtree(target)
        return True
    return False


def plugin_errors() -> list[str]:
    """Load errors FiftyOne recorded for this plugin (it only logs them otherwise); [] when it loaded."""
    import fiftyone.plugins.context as fopc

    for pctx in fopc.build_plugin_contexts(enabled="all"):
        if pctx.name == PLUGIN_NAME:
            return list(pctx.errors)
    return [f"plugin {PLUGIN_NAME} not found under {default_plugins_dir()}"]
