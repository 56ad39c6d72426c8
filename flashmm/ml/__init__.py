"""The ML signal: features, labels, data sets, models, training, evaluation, inference."""
