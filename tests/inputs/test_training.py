"""train_classifier's optimizer choice: SGD and AdamW train (loss falls, checkpoints written), the
default learning rate is the optimizer's own, and an unknown name is a one-line VoGError before any
training (issue 17)."""

import pytest
import torch

from fiftyone_vog.errors import VoGError
from fiftyone_vog.inputs.training import CheckpointSaver, train_classifier
from fiftyone_vog.models import SmallCNN
from fiftyone_vog.options import DEFAULT_LR, OPTIMIZERS


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_and_saves(tmp_path, optimizer):
    x, y = _data()
    torch.manual_seed(0)
    losses = []
    train_classifier(
        SmallCNN(4, in_channels=1, width=8),
        x,
        y,
        epochs=8,
        saver=CheckpointSaver(tmp_path),
        optimizer=optimizer,
        batch_size=16,
        log=lambda e, loss, acc: losses.append(loss),
    )
    assert len(losses) == 8 and losses[-1] < losses[0]
    # every epoch's weights, and CheckpointSaver's manifest that lists them
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(f"epoch_{e}.pt" for e in range(1, 9)), "vog_checkpoints.json"]
    )


def test_default_learning_rate_is_the_optimizers():
    x, y = _data()
    seen = {}
    for optimizer in OPTIMIZERS:
        model = SmallCNN(4, in_channels=1, width=8)
        before = [p.detach().clone() for p in model.parameters()]
        train_classifier(model, x[:16], y[:16], epochs=1, optimizer=optimizer, batch_size=16)
        # one step from zero state: AdamW moves each weight by about lr (the sign of its gradient)
        seen[optimizer] = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
    assert seen["adamw"] == pytest.approx(DEFAULT_LR["adamw"], rel=0.05)
    assert seen["sgd"] != pytest.approx(seen["adamw"], rel=0.05)


def test_unknown_optimizer_is_one_line_error_before_training(tmp_path):
    x, y = _data()
    model = SmallCNN(4, in_channels=1, width=8)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(VoGError) as e:
        train_classifier(model, x, y, epochs=1, saver=CheckpointSaver(tmp_path / "ck"), optimizer="adam")
    msg = str(e.value)
    assert "\n" not in msg and "'adam'" in msg and all(repr(o) in msg for o in OPTIMIZERS)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # nothing trained
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())
