"""The attribute model (DESIGN.md "Attribute model facts"): one backbone, one classification head
per attribute, and retrieval features that match street photos to catalogue images."""
