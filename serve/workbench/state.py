"""What the workbench routes share inside the gateway replica: the case database, the index's
physical scale and the reference images, opened on first use (a gateway without a database
or reference db still serves `/v1/search`)."""

from __future__ import annotations

import threading

from shoematch.cases.preparation import index_px_per_cm
from shoematch.cases.records import CaseRecords
from shoematch.data.dataset import open_dataset
from shoematch.data.lookup import RecordImages
from shoematch.index.layout import IndexManifest


class WorkbenchState:
    def __init__(self, db_url: str | None) -> None:
        self.db_url = db_url
        self._records: CaseRecords | None = None
        self._scales: dict[str, float] = {}
        self._images: dict[str, RecordImages] = {}
        self._lock = threading.Lock()

    @property
    def records(self) -> CaseRecords:
        with self._lock:
            if self._records is None:
                self._records = CaseRecords(self.db_url)
            return self._records

    def px_per_cm(self, manifest: IndexManifest) -> float:
        """The index canvas's px/cm, from its reference db's manifest."""
        with self._lock:
            if manifest.refdb not in self._scales:
                params = open_dataset(manifest.refdb, "references").manifest.params
                self._scales[manifest.refdb] = index_px_per_cm(params, manifest.canvas["width"])
            return self._scales[manifest.refdb]

    def reference_images(self, manifest: IndexManifest) -> RecordImages:
        with self._lock:
            if manifest.refdb not in self._images:
                self._images = {manifest.refdb: RecordImages(manifest.refdb)}
            return self._images[manifest.refdb]
