"""The examiner's case records: preparation of a photo, cases/queries/decisions in a database,
a hash-chained audit log, and the exported case report."""
