"""The FiftyOne side of a run: reading the view, field names, the run type, compute, the writer, resume, torchrun."""
