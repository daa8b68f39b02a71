"""Random access to one record's images by id, for showing a candidate beside a query.

Only the id column of every shard is read up front; a record's images are read from its shard
when asked for, and the last few shards read are kept."""

from __future__ import annotations

from collections import OrderedDict

import pyarrow as pa

from shoematch.data.dataset import open_dataset
from shoematch.data.schema import ID_FIELDS
from shoematch.errors import DatasetError

KEEP_SHARDS = 4


class RecordImages:
    def __init__(self, uri: str, kind: str = "references",
                 fields: tuple[str, ...] = ("print", "depth", "mask")) -> None:
        self.dataset = open_dataset(uri, kind)
        self.id_field = ID_FIELDS[kind]
        self.fields = fields
        self.where: dict[str, tuple[int, int]] = {}
        for shard in range(len(self.dataset.manifest.shards)):
            ids = self.dataset.read_shard(shard, [self.id_field]).column(0).to_pylist()
            self.where.update({rid: (shard, row) for row, rid in enumerate(ids)})
        self.cache: OrderedDict[int, pa.Table] = OrderedDict()

    def _shard(self, shard: int) -> pa.Table:
        if shard not in self.cache:
            self.cache[shard] = self.dataset.read_shard(shard, [self.id_field, *self.fields])
            while len(self.cache) > KEEP_SHARDS:
                self.cache.popitem(last=False)
        self.cache.move_to_end(shard)
        return self.cache[shard]

    def image(self, record_id: str, field: str) -> bytes | None:
        """The PNG bytes of one field of one record (None when the record has no such image)."""
        if field not in self.fields:
            raise DatasetError(f"{field!r} is not one of {', '.join(self.fields)}")
        if record_id not in self.where:
            raise DatasetError(f"{self.dataset.uri}: no record {record_id!r}")
        shard, row = self.where[record_id]
        return self._shard(shard).column(field)[row].as_py()
