"""A Hugging Face ``TrainerCallback`` that keeps VoG-ready checkpoints while ``transformers.Trainer`` trains.

::

    from fiftyone_vog.inputs.hf_callback import VoGTrainerCallback

    trainer = Trainer(model, args, train_dataset=..., processing_class=image_processor,
                      callbacks=[VoGTrainerCallback(every_n_epochs=2)])
    trainer.train()
    fov.compute_vog(dataset, checkpoints=args.output_dir)   # no other argument

Every ``every_n_epochs``-th epoch (and the last), or every ``every_n_saves``-th checkpoint the
Trainer saves, it keeps the model in ``{output_dir}/vog/checkpoint-{step}/``: ``config.json``, the
weights (``model.safetensors``; no optimizer) and the image processor's ``preprocessor_config.json``.
Kept saves are hard links to the Trainer's own files (no extra disk; a copy where links are not
possible), so the Trainer's ``save_total_limit`` can delete its folders without losing VoG's. It
keeps the output folder's manifest (``vog_checkpoints.json``, :mod:`fiftyone_vog.inputs.manifest`)
up to date: the kept folders, their epochs and steps, ``model: "hf"`` (each folder's config.json),
the class order (``id2label``) and the preprocessing (the image processor's settings). It writes on
the main process only.

transformers is imported when :data:`VoGTrainerCallback` is first used (``pip install
'fiftyone-vog[transformers]'``); importing this module does not need it.
"""

from __future__ import annotations

import functools
import math
import os
import shutil

from ..errors import VoGError
from . import hf
from .manifest import ManifestWriter

#: The sub-folder of the Trainer's output folder that holds the kept checkpoints.
FOLDER = "vog"
WRITER = "transformers:VoGTrainerCallback"


def _link_or_copy(source: str, target: str) -> None:
    if os.path.lexists(target):  # our own earlier file (a run again into the same output folder)
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, target)


def _image_processor(processing_class):
    """``processing_class`` when it is an image processor (a tokenizer or a multimodal processor is not)."""
    return processing_class if "ImageProcessor" in type(processing_class).__name__ else None


def _make_callback_class(base):
    class VoGTrainerCallback(base):
        """Keeps VoG-ready checkpoints and their manifest during ``Trainer.train``.

        Args:
            every_n_epochs: keep every n-th epoch (epochs n, 2n, …) and the last one; the model is
                saved by the callback at the epoch's end, whatever the Trainer's ``save_strategy``.
            every_n_saves: instead, keep every n-th checkpoint the Trainer saves (1: all of them).
            classes: the class names in the model's output order, when ``config.id2label`` does not
                name them (default: ``id2label``'s names).
            image_processor: the preprocessing to record and save beside the weights (default: the
                Trainer's ``processing_class`` when it is an image processor).
        """

        def __init__(
            self, every_n_epochs: int | None = 1, every_n_saves: int | None = None, classes=None, image_processor=None
        ):
            super().__init__()
            if every_n_saves is not None:
                every_n_epochs = None
            n = every_n_epochs if every_n_saves is None else every_n_saves
            if n is None or isinstance(n, bool) or int(n) != n or n < 1:
                raise VoGError(f"every_n_epochs / every_n_saves must be a whole number ≥ 1, got {n!r}")
            self.every_n_epochs = None if every_n_epochs is None else int(every_n_epochs)
            self.every_n_saves = None if every_n_saves is None else int(every_n_saves)
            self.classes, self.image_processor = classes, image_processor
            self.manifest: ManifestWriter | None = None
            self._saves = 0
            self._kept_step = None

        def _writer(self, args, model, processor) -> ManifestWriter:
            if self.manifest is None:
                names = hf.config_classes({"id2label": getattr(model.config, "id2label", None)})
                classes = self.classes if self.classes is not None else names
                self.manifest = ManifestWriter(
                    args.output_dir,
                    model=hf.MODEL,
                    classes=classes,
                    transform=None if processor is None else hf.processor_description(processor),
                    writer=WRITER,
                )
            return self.manifest

        def _keep(self, args, state, model, processing_class, saved: str | None = None):
            if not state.is_world_process_zero or state.global_step == self._kept_step:
                return
            processor = self.image_processor or _image_processor(processing_class)
            writer = self._writer(args, model, processor)  # before any file: a foreign manifest refuses first
            target = os.path.join(args.output_dir, FOLDER, f"checkpoint-{state.global_step}")
            os.makedirs(target, exist_ok=True)
            if saved is not None:  # the Trainer's folder: link its model files
                for path in hf.folder_files(saved):
                    _link_or_copy(path, os.path.join(target, os.path.basename(path)))
            else:
                model.save_pretrained(target, safe_serialization=True)
            if processor is not None and not os.path.exists(os.path.join(target, hf.PREPROCESSOR)):
                processor.save_pretrained(target)
            epoch = max(1, math.ceil(round(state.epoch or 0, 6)))  # the epoch in progress, 1-based
            writer.add(target, epoch, state.global_step)
            self._kept_step = state.global_step

        def on_epoch_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.every_n_epochs is None:
                return
            epoch = round(state.epoch or 0)
            last = args.num_train_epochs is not None and epoch >= args.num_train_epochs
            if epoch % self.every_n_epochs == 0 or last:
                self._keep(args, state, model, processing_class)

        def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
            if self.every_n_saves is None:
                return
            self._saves += 1
            saved = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if self._saves % self.every_n_saves == 0 and hf.is_checkpoint_folder(saved):
                self._keep(args, state, model, processing_class, saved)

        def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            # stopped early (max_steps, early stopping): the last state trained is kept too
            if self.every_n_epochs is not None and state.global_step > 0:
                self._keep(args, state, model, processing_class)

    VoGTrainerCallback.__module__ = __name__
    return VoGTrainerCallback


@functools.cache
def _callback_class():
    return _make_callback_class(hf.transformers("the Trainer callback VoGTrainerCallback").TrainerCallback)


def __getattr__(name):
    if name == "VoGTrainerCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
