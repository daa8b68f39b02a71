"""The attribute model (docs/training.md, "Auxiliary models"): one backbone, one classification head
per attribute, and retrieval features that match street photos to catalogue images."""
