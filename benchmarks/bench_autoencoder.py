"""The convolutional autoencoder of Keras's image-denoising example (keras.io/examples/vision/autoencoder),
one training step on a batch of 128 images of 28x28:

    Conv2D(32, 3, relu, same) -> MaxPooling2D(2, same) -> Conv2D(32, 3, relu, same) -> MaxPooling2D(2, same)
    -> Conv2DTranspose(32, 3, strides=2, relu, same) x 2 -> Conv2D(1, 3, sigmoid, same),
    binary cross-entropy, Adam(1e-3)

* shendu: the example's functional model as written for Keras (``import shendu as keras``), ``train_on_batch``;
* torch: the same network by hand (NCHW; ``ConvTranspose2d(padding=1, output_padding=1)`` is Keras's 'same'
  at stride 2), ``torch.optim.Adam``;
* Keras 3 on its PyTorch backend: the example's code itself, timed in the process that times PyTorch (the
  torch column of the second row).

Issue 8 found this example 1.9x slower in shendu than in Keras 3. Its last layer has one output channel, so
im2col + GEMM does little arithmetic per byte there (and its input gradient is a GEMM with an inner dimension
of 1, which also writes a 288-column matrix of the whole batch): shendu runs such narrow convolutions on direct
kernels (``shendu.kernels.conv.NARROW_MAX_OUT``). No target was set for it; the rows ask for PyTorch's speed.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from common import Tracked, interleaved, keras_on_torch, median_time, row, setup_torch, torch_adam_step

BATCH = 128


def _images(batch: int = BATCH) -> np.ndarray:
    return np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)


def build_autoencoder(keras: Any) -> Any:
    """The example's model, for any module with Keras 3's API (``keras`` or ``shendu``)."""
    layers = keras.layers
    inputs = layers.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    model = keras.Model(inputs, x)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def shendu_step() -> Callable[[], Any]:
    import shendu

    shendu.seed(0)
    model = build_autoencoder(shendu)
    x = _images()
    return lambda: model.train_on_batch(x, x)


def torch_step(torch: Any) -> Callable[[], Any]:
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())
    x = torch.from_numpy(_images().transpose(0, 3, 1, 2).copy())
    return torch_adam_step(torch, model, nn.functional.binary_cross_entropy, x, x)


def keras_step() -> Callable[[], Any] | None:
    """Keras 3 on PyTorch running the example (None where :func:`common.keras_on_torch` is)."""
    keras = keras_on_torch()
    if keras is None:
        return None
    keras.utils.set_random_seed(0)
    model = build_autoencoder(keras)
    x = _images()
    return lambda: model.train_on_batch(x, x)


def run(quick: bool) -> list[dict]:
    step = Tracked(shendu_step)
    step()  # the first step (kernels compile or load from Numba's cache), timed on its own
    torch = setup_torch()
    steps = {"shendu": step, "torch": torch_step(torch) if torch is not None else None}
    rate = {name: BATCH / seconds for name, seconds in interleaved(steps, 3 if quick else 7).items()}
    keras = keras_step()
    keras_rate = None
    if keras is not None:
        keras_rate = BATCH / median_time(keras, number=2, repeat=3 if quick else 5)
    name = "Keras conv autoencoder train step (batch 128, Adam, BCE)"
    return [row(name + " vs torch", "samples/s", rate["shendu"], rate.get("torch"), None, ">= 1.0x torch",
                tracked=step),
            row(name + " vs Keras 3 torch backend (torch column)", "samples/s", rate["shendu"], keras_rate, None,
                ">= 1.0x torch")]


if __name__ == "__main__":
    print(run(quick=True))
