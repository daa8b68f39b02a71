"""The retrieval base every model and the index share: the cell encoder's input layout, CriSp
scoring (cell-wise, query-masked), ranking of unique models, metrics, and calibrated
confidence. It imports no model package; evaluation and the models sit above it."""
