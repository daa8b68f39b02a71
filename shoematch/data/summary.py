"""Human-readable summaries of datasets (what the demo prints and what `validate` checks)."""

from __future__ import annotations

from collections import Counter

from shoematch.data.dataset import Dataset
from shoematch.data.schema import DESCRIPTOR_CODES, DESCRIPTORS, REFERENCE_KIND, validate_records


def validate_dataset(dataset: Dataset) -> int:
    """Checksums, then every record decoded and checked against the schema and canvas."""
    dataset.verify()
    return validate_records(dataset.kind, dataset.iter_records(), dataset.canvas)


def summarize(dataset: Dataset) -> dict:
    """Counts that tell a person what a dataset holds."""
    if dataset.kind == REFERENCE_KIND:
        table = dataset.read_table(["model_id", "pattern_id", "descriptors", "split", "depth",
                                    "photo"])
        descriptors = Counter(c for row in table.column("descriptors").to_pylist()
                              for c in row or ())
        return {
            "instances": table.num_rows,
            "models": len(set(table.column("model_id").to_pylist())),
            "patterns": len(set(table.column("pattern_id").to_pylist())),
            "splits": dict(Counter(table.column("split").to_pylist())),
            "with_depth": table.num_rows - table.column("depth").null_count,
            "with_photo": table.num_rows - table.column("photo").null_count,
            "descriptors": {code: descriptors.get(code, 0) for code in DESCRIPTOR_CODES},
        }
    table = dataset.read_table(["category", "seen", "split", "targets"])
    return {
        "queries": table.num_rows,
        "categories": dict(Counter(table.column("category").to_pylist())),
        "seen": sum(table.column("seen").to_pylist()),
        "splits": dict(Counter(table.column("split").to_pylist())),
        "mean_targets": sum(len(t) for t in table.column("targets").to_pylist())
        / max(table.num_rows, 1),
    }


def format_summary(name: str, summary: dict) -> str:
    lines = [f"{name}:"]
    for key, value in summary.items():
        if key == "descriptors":
            lines.append("  descriptors (instances carrying each):")
            lines += [f"    {code:<7} {DESCRIPTORS[code]:<12} {count}"
                      for code, count in value.items()]
        elif isinstance(value, float):
            lines.append(f"  {key}: {value:.2f}")
        else:
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)
