"""Evaluating a cell encoder on a query set: encoding datasets, the placement search for probes
not placed on the sole, hit@K / mAP@K / CMC reports and their pictures.

Above the retrieval base (scoring, metrics) and below the models: it takes any encoder of the
2-channel input of `shoematch.retrieval.inputs` as an `nn.Module`, so CriSp's validation and the
dense matcher's cells+dense evaluation both build on it without it knowing either.
"""
