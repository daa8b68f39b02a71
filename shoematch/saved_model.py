"""The one saved-model format every model here uses: a directory with the weights (a
state_dict) and a JSON file (config plus provenance), loadable from any MODEL_URI.

MODEL_URI may be that directory (local or s3://), a Ray Train checkpoint holding it, or an MLflow
URI (`models:/name/version`, `models:/name@alias`, `runs:/run_id/path`) whose artifacts hold it.
Weights are never unpickled as code.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import torch

from shoematch.errors import ShoematchError
from shoematch.storage import is_s3, open_store


def write_saved_model(directory: str, model: torch.nn.Module, weights: str, config: str,
                      meta: dict[str, Any]) -> None:
    """Write a model's weights (state_dict, DDP unwrapped) and its JSON metadata into a local
    directory (created if needed): the one saved-model format every model here uses."""
    os.makedirs(directory, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DDP
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()},
               os.path.join(directory, weights))
    with open(os.path.join(directory, config), "w") as handle:
        json.dump(meta, handle, indent=2, sort_keys=True)


def read_saved_model(uri: str, weights: str, config: str) -> tuple[dict[str, Any], dict]:
    """(JSON metadata, state_dict) of a model saved by `write_saved_model`, from any MODEL_URI;
    the weights are loaded as tensors only (`weights_only`), never as code."""
    with model_files(uri, (weights, config)) as directory:
        root = find_model_files(directory, uri, (weights, config))
        with open(os.path.join(root, config)) as handle:
            meta = json.load(handle)
        state = torch.load(os.path.join(root, weights), map_location="cpu", weights_only=True)
    return meta, state


@contextlib.contextmanager
def model_files(uri: str, names: tuple[str, ...]) -> Iterator[str]:
    """A local directory holding (somewhere below it) the files `names` of a saved model, from a
    directory, s3:// prefix, Ray checkpoint or MLflow model URI. Any model format saved as
    (weights, JSON config) loads through this; s3:// copies live only inside the `with`."""
    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
        except Exception as exc:  # MLflow raises several types for unknown models/runs
            raise ShoematchError(f"model {uri}: cannot fetch from MLflow ({exc})") from exc
        yield local
        return
    if is_s3(uri):
        store = open_store(uri)
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                if not store.exists(name):
                    raise ShoematchError(f"model {uri}: no {name}")
                with open(os.path.join(tmp, name), "wb") as handle:
                    handle.write(store.read_bytes(name))
            yield tmp
        return
    if not os.path.isdir(uri):
        raise ShoematchError(f"model {uri}: no such directory or MLflow model")
    yield uri


def find_model_files(directory: str, uri: str, names: tuple[str, ...]) -> str:
    """The first directory under `directory` holding all of `names`."""
    for root, _dirs, files in os.walk(directory):
        if all(name in files for name in names):
            return root
    raise ShoematchError(f"model {uri}: no {' + '.join(names)} found in it")
