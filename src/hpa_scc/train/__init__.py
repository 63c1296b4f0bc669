"""Floor 5: training on weak image-level labels (cells, image, truth, MIL; pseudo-labels)."""
