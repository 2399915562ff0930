"""What a run reads: checkpoints and architectures, images and loaders, training helpers (no FiftyOne writes)."""
