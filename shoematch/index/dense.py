"""The optional dense components of an index: the exact maps (re-ranking and the cascade's
exact pass) and the cascade's scan maps, as the manifest records them."""

from __future__ import annotations

import numpy as np

from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.data.schema import Canvas
from shoematch.dense.component import STORED_DTYPE, reference_maps
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.dense.scan import ScanConfig, fit_projection, reduce_references
from shoematch.errors import DatasetError
from shoematch.index.layout import DenseComponent, ScanComponent

PROJECTION_REFERENCES = 64  # references whose cells the scan projection is fitted on
PROJECTION_SEED = 0


def dense_component(config: DenseConfig, canvas: Canvas, px_per_cm: float,
                    scan: ScanComponent | None = None) -> DenseComponent:
    """Grid, channels, stride and bytes per reference of the maps of one blank reference."""
    matcher = DenseMatcher(config)
    maps = reference_maps(matcher, [np.zeros(canvas.shape, np.uint8)], px_per_cm)
    channels, height, width = maps.shape[1:]
    return DenseComponent(config=config.model_dump(mode="json"), px_per_cm=config.px_per_cm,
                          grid=(height, width), channels=channels, stride=matcher.stride,
                          dtype=np.dtype(STORED_DTYPE).name,
                          bytes_per_reference=int(maps[0].nbytes), scan=scan)


def fit_scan_component(refdb: Dataset, config: DenseConfig, scan: ScanConfig,
                       px_per_cm: float) -> ScanComponent:
    """The scan projection fitted on the dense maps of a seeded sample of the references (never
    on queries), and what one reference's scan maps hold."""
    ids = refdb.read_table(["instance_id"]).column("instance_id").to_pylist()
    if not ids:
        raise DatasetError(f"{refdb.uri}: no references to fit the scan projection on")
    rng = np.random.default_rng(PROJECTION_SEED)
    chosen = set(rng.choice(sorted(ids), min(PROJECTION_REFERENCES, len(ids)),
                            replace=False).tolist())
    prints = [decode_image(r["print"], f"{r['instance_id']} print")
              for r in refdb.iter_records(["instance_id", "print"])
              if r["instance_id"] in chosen and r.get("print")]
    if not prints:
        raise DatasetError(f"{refdb.uri}: the sampled references have no prints to fit the "
                           "scan projection on")
    maps = reference_maps(DenseMatcher(config), prints, px_per_cm)
    projection = fit_projection(maps, scan.channels, scan.sample_cells, PROJECTION_SEED)
    reduced = reduce_references(maps[:1], projection, scan.pool)
    return ScanComponent(config=scan.model_dump(mode="json"), projection=projection.to_dict(),
                         grid=tuple(reduced.shape[-2:]), channels=scan.channels,
                         dtype=np.dtype(STORED_DTYPE).name,
                         bytes_per_reference=int(reduced[0].nbytes))
