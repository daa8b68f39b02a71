"""Data problems found inside a training loop are typed errors naming the bad input (the jobs
print them as one line, no traceback), not RuntimeErrors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.data import ShoeData
from shoematch.attributes.predict import build_model
from shoematch.attributes.training import train_steps as attribute_steps
from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.training import make_optimizer as crisp_optimizer
from shoematch.crisp.training import train_steps as crisp_steps
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorOptimConfig
from shoematch.descriptors.data import DescriptorData
from shoematch.descriptors.model import DescriptorNet
from shoematch.descriptors.training import make_optimizer as descriptor_optimizer
from shoematch.descriptors.training import train_steps as descriptor_steps
from shoematch.errors import DatasetError

CPU = torch.device("cpu")


def test_crisp_pass_without_a_full_batch_names_the_refdb():
    config = CrispTrainConfig.model_validate({"data": {"refdb": "/data/refs"},
                                              "model": {"arch": "resnet18", "embed_dim": 8}})
    model = CrispEncoder(**config.model.model_dump())
    with pytest.raises(DatasetError, match="/data/refs: a pass gave worker 1 no full batch"):
        crisp_steps(model, crisp_optimizer(config, model.parameters()), lambda: [], config,
                    rank=1)


def test_descriptor_worker_without_records_is_a_dataset_error():
    model = DescriptorNet(arch="resnet18")
    optim = DescriptorOptimConfig(steps=2, frozen_steps=1)
    empty = DescriptorData([], np.zeros((0, 3, 144, 352), np.uint8),
                           np.zeros((0, len(DESCRIPTOR_CODES)), bool))
    with pytest.raises(DatasetError, match="worker 3: no labelled training records"):
        descriptor_steps(model, descriptor_optimizer(model, optim), empty, optim,
                         torch.ones(len(DESCRIPTOR_CODES)), CPU, rank=3)


def test_attribute_shoe_without_catalogue_photo_is_named():
    config = AttributeTrainConfig.model_validate({
        "data": {"refdb": "/data/refs"}, "optim": {"steps": 1, "models_per_batch": 2},
        "model": {"arch": "resnet18", "input_height": 64, "input_width": 128, "fc_dim": 8}})
    vocabulary = {"colour": ["black", "red"]}
    model = build_model(config.model, vocabulary)
    photos = np.zeros((1, 3, 64, 128), np.uint8)
    data = ShoeData(models=["apex-1", "apex-2"], shop=photos, shop_model=np.array([0]),
                    street=photos, street_model=np.array([1]), targets=np.zeros((2, 1), int))
    with pytest.raises(DatasetError, match="without a catalogue photo: apex-2"):
        attribute_steps(model, torch.optim.AdamW(model.parameters()), data, config, CPU)
