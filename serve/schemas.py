"""The HTTP API's response bodies: typed, so the OpenAPI document is the contract clients (and
the contract test) hold the service to."""

from __future__ import annotations

from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from shoematch.index.filters import SearchFilters
from shoematch.index.layout import DenseComponent
from shoematch.index.reader import Match


class ErrorBody(BaseModel):
    error: str


class Health(BaseModel):
    status: Literal["ok", "no_index"]
    index_version: str | None


class ShardInfo(BaseModel):
    id: str
    rows: int
    models: int
    bytes: int
    slot: int


class IndexInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    index_version: str
    created_at: float
    model_uri: str
    counts: dict[str, int]
    canvas: dict[str, int]
    grid: tuple[int, int]
    dim: int
    dtype: str
    slots: int
    shards: list[ShardInfo]
    attribute_values: dict[str, list[str]]
    label_sources: dict[str, dict[str, int]]
    px_per_cm: float | None = None
    dense: DenseComponent | None = None


class ReloadResult(BaseModel):
    index_version: str
    previous_version: str | None = None
    changed: bool


# A ranked match as the API shows it: the reader's `Match` with its model id as `model_id`,
# a rank, and no internal order — derived from `Match` so the two cannot drift apart.
_MATCH_FIELDS: dict[str, Any] = {name: (hint, ...) for name, hint in get_type_hints(Match).items()
                                 if name not in ("model", "order")}
MatchResult = create_model(
    "MatchResult", __config__=ConfigDict(protected_namespaces=()),
    rank=(int, ...), model_id=(str, ...), **_MATCH_FIELDS)


DENSE_SCORE = ("MCNCC score when scored exactly (re-ranked, or among the cascade's candidates); "
               "null: no valid overlap or past the exactly scored head")
Z_SCORE = ("the cell score standardised over this query's scores against every reference it "
           "was compared with (after filters): how far above the crowd; null if < 2 references")
DenseMatchResult = create_model(
    "DenseMatchResult", __base__=MatchResult,
    dense_score=(float | None, Field(None, description=DENSE_SCORE)),
    z=(float | None, Field(None, description=Z_SCORE)))
P_TOP10 = ("calibrated probability that the true model is among the cell ranking's top 10 "
           "(fitted by jobs.calibrate on held-out queries); null: this index version has no "
           "calibrator that passed the quality gate (see confidence_reason)")
CONFIDENCE_REASON = "why p_top10 is null (e.g. too few calibration queries); null when it is not"
CONFIDENT = "p_top10 ≥ the calibrator's threshold; false: 'no confident match'; null: uncalibrated"


class SearchTimings(BaseModel):
    decode: float
    admission: float = Field(description="waiting for a free slot (admission control)")
    encode: float
    search: float = Field(description="cells: the cell search; cascade: the scan (slowest slot)")
    rerank: float = Field(description="the exact dense pass (with the cascade: and the merge)")
    total: float


class PhotoTimings(BaseModel):
    total: float


class Stage(BaseModel):
    """One stage of the ranking that ran: what it compared the probe with."""

    stage: Literal["cells", "scan", "exact"] = Field(
        description="cells: CriSp cell scan; scan: the dense cascade's first stage; exact: "
                    "MCNCC over the candidates (or over every reference)")
    references: int = Field(description="references this stage scored")
    kept: int | None = Field(None, description="candidates it passed on (scan only)")


class SearchResult(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    index_version: str
    model_uri: str
    k: int
    filters: SearchFilters
    matcher: Literal["cells", "cascade"] = Field(
        description="cascade: dense scan + exact MCNCC; cells: CriSp cells (+ rerank)")
    stages: list[Stage]
    reranked: bool
    rerank: int
    visible_cells: list[list[bool]]
    p_top10: float | None = Field(None, description=P_TOP10)
    confident: bool | None = Field(None, description=CONFIDENT)
    confidence_reason: str | None = Field(None, description=CONFIDENCE_REASON)
    results: list[DenseMatchResult]
    timings_ms: SearchTimings


class PhotoSearchResult(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    index_version: str
    model_uri: str
    k: int
    filters: SearchFilters
    results: list[MatchResult]
    timings_ms: PhotoTimings


class DescriptorScores(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_uri: str
    scores: dict[str, float]
    labels: list[str]
    thresholds: dict[str, float]


class AttributeValue(BaseModel):
    value: str
    score: float


class AttributeValues(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_uri: str
    attributes: dict[str, AttributeValue]


_DESCRIPTIONS = {
    400: "a bad field: the message names it",
    401: "missing or wrong bearer token (when the service has one)",
    404: "no such case, query, upload, image or reference",
    409: "the index (or service) lacks what this route needs",
    413: "the request body exceeds max_upload_bytes",
    503: "over capacity (retry after `Retry-After` seconds), no index loaded, storage "
         "unreachable, or a shard slot did not answer",
}
_HEADERS = {503: {"Retry-After": {"description": "seconds to wait before retrying",
                                  "schema": {"type": "integer", "minimum": 1}}}}


def errors(*codes: int) -> dict[int | str, dict]:
    """`responses=` of a route: each listed status with the one error body shape."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code],
                   **({"headers": _HEADERS[code]} if code in _HEADERS else {})}
            for code in codes}
