"""CriSp (crime-scene print → tread depth map retrieval): the encoder's config, training data,
model, loss, Ray-free training loop, saved-encoder store, sweep trials and `TrainJob`; its ResNet
body lives in `shoematch/models/`, its Ray Data pipeline in `shoematch/ray/crisp.py`."""
