"""Floor 4: cell crops (the one crop path of training and prediction), the crop cache, prepared shards."""
