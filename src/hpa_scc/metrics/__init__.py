"""Floor 4: every mask and classification metric as pure functions, the competition mAP, the leaderboard."""
