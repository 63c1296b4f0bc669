"""Floor 3: the mask token codec and the submission CSV (write, read, validate)."""
