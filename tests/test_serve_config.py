"""The shipped Serve deploy config parses, its args are valid settings, its builder exists."""

from __future__ import annotations

import importlib

import pytest
import yaml

from serve.settings import ServeSettings
from shoematch.errors import QueryError
from tests.conftest import REPO


def test_serve_config_is_deployable():
    config = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    (app,) = config["applications"]
    module, _, name = app["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    ServeSettings.model_validate(app["args"])
    assert config["http_options"]["host"] == "127.0.0.1"


def test_unknown_setting_is_rejected():
    with pytest.raises(Exception, match="nonsense"):
        ServeSettings.model_validate({"index": "x", "nonsense": 1})


def test_gpu_shares_are_fractions_of_one_gpu():
    settings = ServeSettings.model_validate({"index": "x", "shard_gpus": 0.5,
                                             "encoder_gpus": 0.25})
    assert (settings.shard_gpus, settings.encoder_gpus) == (0.5, 0.25)
    for key in ("shard_gpus", "encoder_gpus"):
        with pytest.raises(Exception, match=key):
            ServeSettings.model_validate({"index": "x", key: 1.5})


def test_cpu_encoder_scales_out_and_fits_a_two_cpu_node():
    settings = ServeSettings.model_validate({"index": "x"})
    # On CPU batching buys no throughput: a replica with more than Serve's default target of
    # queued queries asks for another rather than filling a batch of 8.
    assert settings.encoder_target_ongoing() == 2
    gpu = ServeSettings.model_validate({"index": "x", "encoder_gpus": 0.5})
    assert gpu.encoder_target_ongoing() == gpu.encoder_batch_size
    reserved = (settings.encoder_max_replicas * settings.encoder_cpus
                + settings.slots * settings.shard_cpus + settings.gateway_cpus
                + settings.labels_cpus)
    assert reserved <= 2  # every default replica, the encoder's last one too, is placed


def test_uploads_are_checked():
    import numpy as np

    from serve.uploads import decode_mask, decode_print
    from shoematch.data.images import encode_png

    image = np.zeros((8, 16), np.uint8)
    image[2:5, 3:9] = 255
    decoded = decode_print(encode_png(image), (8, 16))
    assert decode_mask(None, decoded).sum() == 18
    with pytest.raises(QueryError, match="canvas"):
        decode_print(encode_png(image), (16, 32))
    with pytest.raises(QueryError, match="no ink"):
        decode_mask(None, np.zeros((8, 16), np.uint8))
