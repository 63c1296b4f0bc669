"""Floor 6: baselines (floor, transferred truth) and the pipeline runner shared by the demo and the quality bench."""
