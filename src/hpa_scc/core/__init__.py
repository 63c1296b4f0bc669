"""Floor 1, what every stage uses: errors, classes, config, file names, safe writes, parallel batches."""
