"""The NFRC descriptor classifier (docs/training.md, "Auxiliary models"): which of the 17 tread
descriptors a print shows, as a multi-label model with calibrated per-descriptor thresholds."""
