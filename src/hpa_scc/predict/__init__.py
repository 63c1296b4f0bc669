"""Floor 5: per-cell inference streamed through the model, blends, resume journal, submission."""
