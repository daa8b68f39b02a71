"""Retrieval: CriSp scoring (cell-wise, query-masked), ranking of unique models and metrics."""
