"""Core library: geometry, datasets, clips, metrics, model, training and evaluation."""
