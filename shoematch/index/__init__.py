"""Versioned, sharded reference-embedding index and its exact masked top-k search."""
