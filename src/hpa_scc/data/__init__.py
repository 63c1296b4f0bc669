"""Floor 2: RGBY images, label PNGs, IDs and every CSV table."""
