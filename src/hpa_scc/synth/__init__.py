"""Floor 5: synthetic HPA-like images with cell-level truth, in the Kaggle layout."""
