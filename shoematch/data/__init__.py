"""Records, storage of Parquet datasets, the synthetic generator and readers of real data."""
