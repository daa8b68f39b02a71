"""The NFRC descriptor classifier (DESIGN.md "Descriptor model facts"): which of the 17 tread
descriptors a print shows, as a multi-label model with calibrated per-descriptor thresholds."""
