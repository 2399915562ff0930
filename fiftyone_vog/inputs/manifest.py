"""The checkpoint folder's manifest, ``vog_checkpoints.json``: what ``compute_vog`` needs to score a
folder of training checkpoints with no other argument. No torch, no FiftyOne.

Written during training by :class:`fiftyone_vog.inputs.training.CheckpointSaver`, the Lightning
callback (:mod:`fiftyone_vog.inputs.callbacks`) and the Hugging Face ``TrainerCallback``, all through
:class:`ManifestWriter`; read by ``compute_vog(ds, checkpoints="runs/exp1")`` through
:func:`read_manifest`. One schema, one reader, one writer, whoever trains.

Schema (``version`` 1; a JSON object, UTF-8)::

    {
      "format": "fiftyone-vog-checkpoints",  # always this: marks the file as ours
      "version": 1,                          # a newer version is refused, with "upgrade"
      "model": "timm:resnet18",              # the architecture, as compute_vog's model= string; or null
      "num_classes": 10,                     # the model's output size; or null (= len(classes))
      "classes": ["airplane", ...],          # class names in the model's output order; or null
      "transform": {"kind": "timm", ...},    # the evaluation preprocessing; or null (see below)
      "state_dict_key": null,                # which entry of each file holds the weights; null: auto
      "writer": "lightning:VoGCheckpoint",   # who wrote it (information only)
      "checkpoints": [                       # one per saved checkpoint, any order in the file
        {"file": "epoch_2.pt", "epoch": 2, "step": 120},
        ...
      ]
    }

- ``checkpoints[].file``: a path relative to the folder, inside it (no absolute path, no ``..``,
  no link out of the folder): a file, or a folder for formats saved as one (Hugging Face
  ``checkpoint-500/``). Training order is ``(epoch, step)``; ``step`` may be null.
- ``model``: any string ``compute_vog(model=)`` takes that names an architecture without running
  the caller's code (``"timm:NAME"``, a torchvision name, a name of this package's models). A
  ``"package.module:callable"`` is recorded but not imported on the manifest's word: the caller
  must pass it as ``model=`` (code from data needs an opt-in).
- ``transform``: a preset name (``"rgb"``, ``"gray"``, ``"cifar"``, ``"imagenet"``) or a
  ``{"kind": ..., ...}`` object that :func:`fiftyone_vog.inputs.images.build_transform` reads
  (``{"kind": "timm", "data_config": {...}}``: timm's ``create_transform`` in eval mode). null:
  compute_vog's default (the model's own preprocessing when it has one, else ``"rgb"``).

Unknown top-level keys are kept (:attr:`Manifest.extra`) and ignored, so a writer may add its
own (a newer writer's extra key does not need a new version).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VoGError

MANIFEST_NAME = "vog_checkpoints.json"
FORMAT = "fiftyone-vog-checkpoints"
VERSION = 1
_KNOWN = (
    "format",
    "version",
    "model",
    "num_classes",
    "classes",
    "transform",
    "state_dict_key",
    "writer",
    "checkpoints",
)


@dataclass(frozen=True)
class Entry:
    """One saved checkpoint: its path relative to the folder, its epoch and (optional) step."""

    file: str
    epoch: int
    step: int | None = None

    def to_json(self) -> dict:
        return {"file": self.file, "epoch": self.epoch, "step": self.step}


@dataclass
class Manifest:
    """A folder's ``vog_checkpoints.json`` (see the module's docstring for each field)."""

    directory: Path
    checkpoints: list[Entry] = field(default_factory=list)
    model: str | None = None
    num_classes: int | None = None
    classes: list[str] | None = None
    transform: str | dict | None = None
    state_dict_key: str | None = None
    writer: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def ordered(self) -> list[Entry]:
        """The entries in training order: by epoch, then step."""
        return sorted(self.checkpoints, key=lambda e: (e.epoch, -1 if e.step is None else e.step))

    def paths(self) -> list[Path]:
        """The checkpoints' paths in training order; each must exist inside the folder."""
        out = []
        for e in self.ordered():
            p = self.directory / e.file
            if not os.path.lexists(p):
                raise VoGError(
                    f"{self.path} lists checkpoint {e.file!r} (epoch {e.epoch}), which does not exist; "
                    "restore the file, or remove its entry from the manifest"
                )
            if not _within(os.path.realpath(p), os.path.realpath(self.directory)):
                raise VoGError(f"{self.path}: checkpoint {e.file!r} is a link out of the folder; copy the file in")
            out.append(p)
        return out

    def check_classes(self, classes):
        """``classes=`` if given, else the recorded ones (the model's output order); the two must agree."""
        if self.classes is None:
            return classes
        if classes is not None and list(classes) != self.classes:
            raise VoGError(
                f"classes= {list(classes)[:10]} differ from the model's output order recorded in {self.path} "
                f"({self.classes[:10]}); leave classes= out to use the recorded order, or fix the manifest"
            )
        return list(self.classes)

    def to_json(self) -> dict:
        return {
            **self.extra,
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "transform": self.transform,
            "state_dict_key": self.state_dict_key,
            "writer": self.writer,
            "checkpoints": [e.to_json() for e in self.ordered()],
        }


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _bad(path, what: str) -> VoGError:
    return VoGError(f"{path} is not a valid checkpoint manifest: {what}; fix or delete the file")


def _int(value, path, what, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, f"{what} must be a whole number, got {value!r}")
    return value


def _entry(item, path) -> Entry:
    if not isinstance(item, dict) or not isinstance(item.get("file"), str) or not item["file"].strip():
        raise _bad(path, f"each checkpoint must be an object with a 'file', got {item!r:.80}")
    name = item["file"]
    parts = Path(name).parts
    if os.path.isabs(name) or ".." in parts or name.startswith("~"):
        raise _bad(path, f"checkpoint {name!r} must be a path relative to the folder, inside it")
    return Entry(
        name, _int(item.get("epoch"), path, f"the epoch of {name!r}"), _int(item.get("step"), path, "step", True)
    )


def parse_manifest(data: Any, directory: str | os.PathLike) -> Manifest:
    """A :class:`Manifest` from the decoded JSON ``data`` of ``directory``'s manifest, checked."""
    path = Path(directory) / MANIFEST_NAME
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VoGError(
            f'{path} is not a fiftyone-vog checkpoint manifest (no "format": "{FORMAT}"); '
            "fiftyone-vog leaves it alone: rename it, or list the checkpoints yourself"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(path, f"version must be a whole number ≥ 1, got {version!r}")
    if version > VERSION:
        raise VoGError(
            f"{path} is a version {version} manifest, newer than this fiftyone-vog reads ({VERSION}); "
            "upgrade fiftyone-vog"
        )
    items = data.get("checkpoints")
    if not isinstance(items, list):
        raise _bad(path, "'checkpoints' must be a list")
    entries = [_entry(item, path) for item in items]
    files = [e.file for e in entries]
    dup = next((f for i, f in enumerate(files) if f in files[:i]), None)
    if dup is not None:
        raise _bad(path, f"checkpoint {dup!r} is listed twice")
    model, classes, transform = data.get("model"), data.get("classes"), data.get("transform")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _bad(path, f"'model' must be an architecture name or null, got {model!r}")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise _bad(path, "'classes' must be a list of class names or null")
    if transform is not None and not (
        isinstance(transform, str) or (isinstance(transform, dict) and isinstance(transform.get("kind"), str))
    ):
        raise _bad(path, "'transform' must be a preset name, an object with a 'kind', or null")
    key = data.get("state_dict_key")
    if key is not None and not isinstance(key, str):
        raise _bad(path, "'state_dict_key' must be a string or null")
    writer = data.get("writer")
    return Manifest(
        directory=Path(directory),
        checkpoints=entries,
        model=model,
        num_classes=_int(data.get("num_classes"), path, "num_classes", optional=True),
        classes=classes,
        transform=transform,
        state_dict_key=key,
        writer=writer if isinstance(writer, str) else None,
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )


def read_manifest(directory: str | os.PathLike) -> Manifest | None:
    """``directory``'s manifest, or None when it has none. A file that is not one of ours, is
    malformed, or lists a file outside the folder raises :class:`VoGError` naming it."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"not readable JSON ({type(e).__name__})") from None
    return parse_manifest(data, directory)


def write_manifest(manifest: Manifest) -> Path:
    """Write ``manifest`` atomically (a temporary file, then a rename): a reader never sees half a
    file. Refuses to replace a ``vog_checkpoints.json`` that is not ours."""
    path = manifest.path
    if path.exists():
        read_manifest(manifest.directory)  # raises when the file there is not one of ours
    manifest.directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=manifest.directory, prefix=".vog_checkpoints.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class ManifestWriter:
    """Keeps a folder's manifest up to date while training saves checkpoints into it.

    Each :meth:`add` records one saved checkpoint and rewrites the manifest. A manifest already in
    the folder (an earlier run) is continued when it describes the same model, classes and
    transform and this writer's first epoch comes after its entries (training resumed); otherwise
    its entries from this first epoch on are dropped (their files are being overwritten) and, for
    another model, all of them.

    Args:
        directory: the checkpoint folder (created if missing).
        model, num_classes, classes, transform, state_dict_key: what the manifest records
            (see the module's docstring); None where unknown.
        writer: who writes, for information (e.g. ``"lightning:VoGCheckpoint"``).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        model: str | None = None,
        num_classes: int | None = None,
        classes=None,
        transform: str | dict | None = None,
        state_dict_key: str | None = None,
        writer: str | None = None,
    ):
        self.manifest = Manifest(
            directory=Path(directory),
            model=model,
            num_classes=num_classes,
            classes=None if classes is None else [str(c) for c in classes],
            transform=transform,
            state_dict_key=state_dict_key,
            writer=writer,
        )
        self._earlier: list[Entry] | None = None  # an earlier run's entries, read at the first add
        read_manifest(directory)  # a vog_checkpoints.json there that is not ours (or unreadable) refuses now

    def _continue_earlier(self, first_epoch: int) -> list[Entry]:
        old = read_manifest(self.manifest.directory)
        if old is None:
            return []
        m = self.manifest
        if (old.model, old.classes, old.transform, old.num_classes) != (m.model, m.classes, m.transform, m.num_classes):
            return []
        return [e for e in old.checkpoints if e.epoch < first_epoch]

    def add(self, file: str | os.PathLike, epoch: int, step: int | None = None) -> Path:
        """Record the checkpoint ``file`` (inside the folder) of ``epoch``; returns the manifest's path."""
        rel = os.path.relpath(os.path.abspath(file), os.path.abspath(self.manifest.directory))
        if self._earlier is None:
            self._earlier = self._continue_earlier(int(epoch))
        entries = [e for e in self.manifest.checkpoints if e.file != rel]
        self.manifest.checkpoints = entries + [Entry(rel, int(epoch), None if step is None else int(step))]
        current = {e.file for e in self.manifest.checkpoints}
        kept = [e for e in self._earlier if e.file not in current]
        full = Manifest(**{**vars(self.manifest), "checkpoints": kept + self.manifest.checkpoints})
        return write_manifest(full)
