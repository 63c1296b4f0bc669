"""Floor 3: RGBY image -> cell and nucleus label images (classical default, hpacellseg backend), and the mask cache."""
