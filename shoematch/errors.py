"""Error types whose messages name the offending input, so users can fix it without a traceback."""


class ShoematchError(Exception):
    """Base class: every error raised on bad input or bad configuration."""


class ConfigError(ShoematchError):
    """A configuration file or override is invalid (unknown key, wrong type, missing file)."""


class StorageError(ShoematchError):
    """A storage location cannot be reached, read or written."""


class DatasetError(ShoematchError):
    """A dataset is missing, incomplete, corrupt, or violates the record schema."""


class ImageError(DatasetError):
    """An image cannot be decoded or does not fit the canonical canvas."""


class PixelBudgetError(ImageError):
    """An image declares more pixels than allowed (refused from its header, never decoded)."""


class CaseError(ShoematchError):
    """A case-record request is invalid: unknown case, query or image, or a bad decision."""


class CaseNotFound(CaseError):
    """A case, query or upload named in a request does not exist."""


class SearchIndexError(ShoematchError):
    """An embedding index is missing, incomplete, corrupt, or does not fit the request."""


class QueryError(ShoematchError):
    """A search request is invalid (bad image, mask, k, or filter); names the offending part."""


class TrainingError(ShoematchError):
    """A training run ended without a usable result (no checkpoint, no model to register)."""


class IndexComponentMissing(SearchIndexError):
    """The index version lacks an optional component the request needs (e.g. dense maps)."""


class BlankPrintError(QueryError):
    """The prepared print has no ink on the canvas (placed off it, or cropped to nothing)."""
