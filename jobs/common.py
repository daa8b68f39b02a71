"""What every job shares: environment defaults, its command line, printing a training outcome,
and error reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from shoematch.config import StrictModel, load_config
from shoematch.env import apply_quiet_defaults
from shoematch.errors import ShoematchError
from shoematch.log import get_logger

if TYPE_CHECKING:  # jobs without training should not pay for importing torch
    from shoematch.training.job import TrainOutcome

log = get_logger("jobs")
C = TypeVar("C", bound=StrictModel)
apply_quiet_defaults()


def parse_config(config_type: type[C], prog: str, doc: str | None,
                 argv: list[str] | None) -> C:
    """`--config FILE key.sub=value ...` → the job's validated config."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(config_type, args.config, args.overrides)


def print_outcome(outcome: TrainOutcome, values: Mapping[str, Any], label: str = "") -> None:
    """The registered model, the last checkpoint, then `values` one per line."""
    print(f"model: {outcome.model_uri}")
    print(f"checkpoint: {outcome.checkpoint}")
    for key, value in sorted(values.items()):
        print(f"{label}{key}: {value:.4f}" if isinstance(value, float)
              else f"{label}{key}: {value}")


def shoematch_cause(exc: BaseException) -> ShoematchError | None:
    """The ShoematchError behind `exc`, also when Ray (tasks, Ray Data, Train) wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        inner = getattr(current, "cause", None)  # Ray's wrappers keep the original here
        if isinstance(current, ShoematchError) and not isinstance(inner, BaseException):
            return current
        seen.add(id(current))
        current = inner if isinstance(inner, BaseException) else (
            current.__cause__ or current.__context__)
    return None


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a job's main; shoematch errors print one clear line and exit 2 (no traceback)."""
    try:
        code = main(argv)
    except Exception as exc:
        cause = shoematch_cause(exc)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
