import io

import numpy as np
import pytest
from PIL import Image

from shoematch.data.images import decode_image, encode_png
from shoematch.errors import ImageError


@pytest.mark.parametrize("shape", [(7, 13), (5, 9, 3), (1, 1), (4, 6, 1)])
def test_png_round_trip_through_pillow(shape):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(array)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # checks chunk CRCs
    mode = "RGB" if len(shape) == 3 and shape[2] == 3 else "L"
    assert (decode_image(data, "x", mode) == array.reshape(shape[:2] + (-1,)).squeeze(-1)
            if mode == "L" else decode_image(data, "x", mode) == array).all()


def test_bad_inputs_named():
    with pytest.raises(ImageError, match="uint8"):
        encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ImageError, match="shape"):
        encode_png(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ImageError, match="q7: cannot decode"):
        decode_image(b"\x89PNG broken", "q7")
    with pytest.raises(ImageError, match="q8: image is empty"):
        decode_image(b"", "q8")
