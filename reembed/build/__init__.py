"""Building versions: runs (the model and every transition), planning rounds,
batches, one chunk-batch, the quality gate, finalize, catch-up and routing.
"""
