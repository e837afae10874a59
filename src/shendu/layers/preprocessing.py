"""Preprocessing and augmentation layers with Keras 3's arguments and semantics.

``Rescaling`` and ``Normalization`` (with ``adapt``) always apply. The random layers (``RandomFlip``,
``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomCrop``) transform images only when called
with ``training=True`` (as inside ``fit``) and pass them through unchanged otherwise (``RandomCrop`` then
takes the central window and resizes it, as Keras does). They draw from ``shendu.random.get_rng()`` (so
``shendu.seed(n)`` makes runs repeat), or from their own generator when given ``seed=``; each image of a
batch gets its own draw. Images are ``(batch, height, width, channels)`` (or one image without the batch
axis); ``data_format='channels_first'`` takes ``(batch, channels, height, width)``.

Geometric transforms follow Keras's ``affine_transform``: output pixel (x, y) samples the input at
``(a0 x + a1 y + a2, b0 x + b1 y + b2)``, with ``interpolation`` 'bilinear' or 'nearest' and ``fill_mode``
for points outside: 'reflect' (d c b a | a b c d | d c b a), 'wrap' (a b c d | a b c d), 'nearest'
(a a a a | a b c d | d d d d) or 'constant' (``fill_value``). The random layers' outputs carry no gradient.

>>> import numpy as np
>>> Rescaling(1 / 255)(np.array([[0, 51, 255]], dtype=np.uint8)).data.astype(float).round(4).tolist()
[[0.0, 0.2, 1.0]]
>>> norm = Normalization()
>>> norm.adapt(np.array([[0.0], [2.0], [4.0]]))
>>> norm(np.array([[2.0], [4.0]])).data.astype(float).round(4).ravel().tolist()
[0.0, 1.2247]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.layers.core import check_data_format, positive_int
from shendu.layers.layer import Layer
from shendu.random import get_rng

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")
_EPSILON = 1e-7  # Keras's backend.epsilon(): Normalization divides by max(sqrt(variance), epsilon)


# ---------------------------------------------------------------------------- Rescaling, Normalization
class Rescaling(Layer):
    """y = x * scale + offset (``scale``/``offset`` numbers, or one value per channel).

    ``Rescaling(1/255)`` maps [0, 255] to [0, 1]; ``Rescaling(1/127.5, offset=-1)`` to [-1, 1].
    """

    supports_masking = True

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, inputs: Tensor) -> Tensor:
        xp = get_array_module(inputs.data)
        scale = xp.asarray(self.scale, dtype=inputs.data.dtype)
        offset = xp.asarray(self.offset, dtype=inputs.data.dtype)
        return inputs * scale + offset

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": _jsonable(self.scale), "offset": _jsonable(self.offset)}


def _jsonable(value: Any) -> Any:
    return np.asarray(value).tolist() if not isinstance(value, (int, float)) else value


class Normalization(Layer):
    """y = (x - mean) / max(sqrt(variance), 1e-7) per feature on ``axis``; ``invert=True``: y = mean + x * std.

    ``mean``/``variance`` are given, or learnt from data by ``adapt(data)``: the mean and (biased) variance
    over every axis except ``axis`` (default -1: per channel; ``None``: one scalar over everything).
    ``data`` is an array or an iterable of batches (arrays, or ``(x, y)`` pairs whose x is used), such as
    a ``DataLoader``. Adapted statistics are non-trainable weights 'mean' and 'variance' (Keras's names).
    """

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None, invert: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization: give both mean and variance or neither (to adapt() them), got "
                             f"mean={mean!r}, variance={variance!r}")
        self.axis = (axis,) if isinstance(axis, int) else (() if axis is None else tuple(axis))
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)

    def build(self, input_shape: tuple) -> None:
        ndim = len(input_shape)
        keep = tuple(sorted(a % ndim for a in self.axis))
        if any(a == 0 for a in keep) or any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(f"layer '{self.name}' (Normalization): axis {self.axis} must name feature axes of the "
                             f"{ndim}-D input (shape {input_shape}); axis 0 is the batch")
        if any(input_shape[a] is None for a in keep):
            raise ValueError(f"layer '{self.name}' (Normalization) needs known sizes on axis {self.axis}, got input "
                             f"shape {input_shape}")
        self.keep_axes = keep
        self.reduce_axes = tuple(a for a in range(ndim) if a not in keep)
        stats_shape = tuple(input_shape[a] for a in keep)
        self.broadcast_shape = tuple(input_shape[a] if a in keep else 1 for a in range(ndim))
        if self.input_mean is None:
            self.mean = self.add_weight("mean", stats_shape, "zeros", trainable=False)
            self.variance = self.add_weight("variance", stats_shape, "ones", trainable=False)
        else:
            self.mean = self.variance = None
            self._fixed = [np.broadcast_to(np.asarray(v, dtype=self._dtype), stats_shape).copy()
                           for v in (self.input_mean, self.input_variance)]

    def _statistics(self) -> tuple[Any, Any]:
        if self.mean is None:
            mean, var = (backend.as_array(v, device=self._device) for v in self._fixed)
        else:
            mean, var = self.mean.data, self.variance.data
        xp = get_array_module(mean)
        std = xp.maximum(xp.sqrt(var), xp.asarray(_EPSILON, dtype=var.dtype))
        return mean.reshape(self.broadcast_shape), std.reshape(self.broadcast_shape)

    def call(self, inputs: Tensor) -> Tensor:
        mean, std = self._statistics()
        if self.invert:
            return inputs * std + mean
        return (inputs - mean) * (1 / std)

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn mean and variance from ``data`` (an array, or an iterable of batches; at most ``steps`` batches).

        Batches are combined exactly (Chan et al.'s parallel update, in float64).
        """
        if self.input_mean is not None:
            raise ValueError(f"layer '{self.name}' (Normalization) was given mean and variance; adapt() learns them "
                             "only when they are not given")
        count, mean, m2 = 0, 0.0, 0.0
        for i, batch in enumerate(_batches(data, batch_size)):
            if steps is not None and i >= steps:
                break
            if not self.built:
                self.build((None, *batch.shape[1:]))
            if self.input_spec is not None:
                self._check_inputs(batch.shape)
            axes = self.reduce_axes
            n = int(np.prod([batch.shape[a] for a in axes]))
            batch_mean = batch.mean(axis=axes)
            batch_m2 = ((batch - batch_mean.reshape(self.broadcast_shape)) ** 2).sum(axis=axes)
            delta = batch_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta ** 2 * (count * n / total)
            count = total
        if count == 0:
            raise ValueError(f"layer '{self.name}' (Normalization).adapt() received no data")
        self.mean.data[...] = backend.as_array(np.asarray(mean), dtype=self._dtype, device=self._device)
        self.variance.data[...] = backend.as_array(np.asarray(m2 / count), dtype=self._dtype, device=self._device)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        axis = self.axis[0] if len(self.axis) == 1 else (list(self.axis) or None)
        return {**super().get_config(), "axis": axis, "mean": _jsonable_or_none(self.input_mean),
                "variance": _jsonable_or_none(self.input_variance), "invert": self.invert}


def _jsonable_or_none(value: Any) -> Any:
    return None if value is None else _jsonable(value)


def _batches(data: Any, batch_size: int | None) -> Iterable[np.ndarray]:
    """float64 NumPy batches from an array/Tensor (split by ``batch_size``) or an iterable of batches."""
    if isinstance(data, Tensor) or backend.is_array(data) or isinstance(data, (list, tuple)) and data and \
            not isinstance(data[0], (tuple, list, Tensor)) and np.ndim(data[0]) == 0:
        array = np.asarray(backend.to_numpy(raw(data)), dtype=np.float64)
        size = batch_size or len(array) or 1
        for start in range(0, len(array), size):
            yield array[start:start + size]
        return
    for batch in data:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield np.asarray(backend.to_numpy(raw(batch)), dtype=np.float64)


# ---------------------------------------------------------------------------- image sampling
def _resolve(index: Any, size: int, fill_mode: str, xp: Any) -> tuple[Any, Any]:
    """Integer indices mapped into [0, size) by ``fill_mode``, and where they were inside (constant mode)."""
    if fill_mode == "reflect":
        period = index % (2 * size)
        return xp.where(period >= size, 2 * size - 1 - period, period), None
    if fill_mode == "wrap":
        return index % size, None
    inside = (index >= 0) & (index < size) if fill_mode == "constant" else None
    return xp.clip(index, 0, size - 1), inside


def affine_transform(images: Any, matrices: Any, interpolation: str = "bilinear", fill_mode: str = "reflect",
                     fill_value: float = 0.0, output_size: tuple[int, int] | None = None) -> Any:
    """Sample NHWC ``images`` through one 8-vector ``[a0, a1, a2, b0, b1, b2, 0, 0]`` per image (Keras's
    convention: output (x, y) reads input (a0 x + a1 y + a2, b0 x + b1 y + b2)); returns the new images."""
    xp = get_array_module(images)
    n, height, width, _ = images.shape
    out_h, out_w = output_size or (height, width)
    dtype = images.dtype if images.dtype.kind == "f" else np.float32  # Keras computes in the images' float type
    m = xp.asarray(matrices, dtype=dtype).reshape(n, -1)[:, :6, None, None]
    ys, xs = xp.meshgrid(xp.arange(out_h, dtype=dtype), xp.arange(out_w, dtype=dtype), indexing="ij")
    x_in = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]
    y_in = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    flat = images.reshape(n * height * width, -1)
    base = (xp.arange(n) * (height * width))[:, None, None]
    fill = xp.asarray(fill_value, dtype=images.dtype)

    def rows(yi: Any) -> tuple[Any, Any]:
        resolved, inside = _resolve(yi, height, fill_mode, xp)
        return base + resolved * width, inside

    def gather(row: tuple[Any, Any], column: tuple[Any, Any]) -> Any:
        values = xp.take(flat, row[0] + column[0], axis=0)
        if row[1] is None:
            return values
        return xp.where((row[1] & column[1])[..., None], values, fill)

    if interpolation == "nearest":
        column = _resolve(xp.floor(x_in + 0.5).astype(np.int64), width, fill_mode, xp)
        return gather(rows(xp.floor(y_in + 0.5).astype(np.int64)), column)
    y0, x0 = xp.floor(y_in), xp.floor(x_in)
    wy, wx = (y_in - y0)[..., None], (x_in - x0)[..., None]
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    top, bottom = rows(y0), rows(y0 + 1)
    left, right = _resolve(x0, width, fill_mode, xp), _resolve(x0 + 1, width, fill_mode, xp)
    upper = gather(top, left)
    upper += (gather(top, right) - upper) * wx
    lower = gather(bottom, left)
    lower += (gather(bottom, right) - lower) * wx
    lower -= upper
    lower *= wy
    upper += lower
    return upper.astype(images.dtype, copy=False)


def resize(images: Any, height: int, width: int, interpolation: str = "bilinear") -> Any:
    """NHWC images resized to (height, width), half-pixel centres, no antialiasing (Keras/TF ``resize``)."""
    n, in_h, in_w, _ = images.shape
    sy, sx = in_h / height, in_w / width
    matrix = np.array([sx, 0, 0.5 * sx - 0.5, 0, sy, 0.5 * sy - 0.5, 0, 0])
    return affine_transform(images, np.tile(matrix, (n, 1)), interpolation, "nearest", 0.0, (height, width))


# ---------------------------------------------------------------------------- random layers
class _RandomImageLayer(Layer):
    """Shared by the random layers: argument checks, the generator, NHWC/unbatched handling, training gate."""

    def __init__(self, seed: int | None = None, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.data_format = check_data_format(type(self).__name__, data_format)
        self._rng = None if seed is None else np.random.default_rng(seed)

    @property
    def rng(self) -> np.random.Generator:
        return self._rng if self._rng is not None else get_rng()

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = inputs.data
        if x.ndim not in (3, 4):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects images (batch, height, width, "
                             f"channels) or one image (height, width, channels), received shape {x.shape}")
        unbatched = x.ndim == 3
        if unbatched:
            x = x[None]
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        y = self.transform(x, bool(training))
        if y is None:
            return inputs
        if self.data_format == "channels_first":
            y = y.transpose(0, 3, 1, 2)
        return Tensor._wrap(get_array_module(y).ascontiguousarray(y[0] if unbatched else y))

    def transform(self, images: Any, training: bool) -> Any:
        """NHWC images -> transformed NHWC images (None: unchanged)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed, "data_format": self.data_format}


def _factor(layer: str, name: str, value: Any, low: float | None = -1.0, high: float | None = 1.0
            ) -> tuple[float, float]:
    """Keras's factor: a number f means (-f, f); a pair (lower, upper) with low <= lower <= upper <= high."""
    pair = (-abs(value), abs(value)) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(pair) != 2 or pair[0] > pair[1] or (low is not None and pair[0] < low) or (
            high is not None and pair[1] > high):
        bounds = f" within [{low}, {high}]" if high is not None else (f" above {low}" if low is not None else "")
        raise ValueError(f"{layer}: {name} must be a number or a pair (lower, upper) with lower <= upper{bounds}, "
                         f"got {value!r}")
    return float(pair[0]), float(pair[1])


def _check_choice(layer: str, name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{layer}: {name} must be one of {choices}, got {value!r}")
    return value


class _AffineLayer(_RandomImageLayer):
    """Random layers that resample the image through an affine matrix per image."""

    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        name = type(self).__name__
        self.fill_mode = _check_choice(name, "fill_mode", fill_mode, FILL_MODES)
        self.interpolation = _check_choice(name, "interpolation", interpolation, INTERPOLATIONS)
        self.fill_value = float(fill_value)

    def matrices(self, n: int, height: int, width: int) -> np.ndarray:
        """(n, 8) affine matrices, drawn at random."""
        raise NotImplementedError

    def transform(self, images: Any, training: bool) -> Any:
        if not training:
            return None
        n, height, width, _ = images.shape
        return affine_transform(images, self.matrices(n, height, width), self.interpolation, self.fill_mode,
                                self.fill_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


class RandomFlip(_RandomImageLayer):
    """Flips each image left-right ('horizontal'), upside down ('vertical') or each independently
    ('horizontal_and_vertical', the default), each with probability 1/2, in training."""

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = _check_choice("RandomFlip", "mode", mode, ("horizontal", "vertical", "horizontal_and_vertical"))

    def transform(self, images: Any, training: bool) -> Any:
        if not training:
            return None
        xp = get_array_module(images)
        n = images.shape[0]
        out = images
        for axis, active in ((2, "horizontal" in self.mode), (1, "vertical" in self.mode)):
            if active:
                flip = xp.asarray(self.rng.random(n) < 0.5).reshape(n, 1, 1, 1)
                out = xp.where(flip, xp.flip(out, axis=axis), out)
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


class RandomTranslation(_AffineLayer):
    """Shifts each image by dy = u * height, dx = v * width, u ~ U(height_factor), v ~ U(width_factor)
    (a number f means (-f, f); positive moves the content down / right), in training."""

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor("RandomTranslation", "height_factor", height_factor)
        self.width_factor = _factor("RandomTranslation", "width_factor", width_factor)

    def matrices(self, n: int, height: int, width: int) -> np.ndarray:
        dy = self.rng.uniform(*self.height_factor, size=n) * height
        dx = self.rng.uniform(*self.width_factor, size=n) * width
        ones, zeros = np.ones(n), np.zeros(n)
        return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor)}


class RandomRotation(_AffineLayer):
    """Rotates each image about its centre by an angle ~ U(factor) * 360 degrees (a number f means (-f, f);
    positive turns counter-clockwise), in training."""

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor("RandomRotation", "factor", factor, low=None, high=None)

    def matrices(self, n: int, height: int, width: int) -> np.ndarray:
        angle = np.deg2rad(self.rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=n))
        return rotation_matrices(angle, height, width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": list(self.factor)}


def rotation_matrices(angle: np.ndarray, height: int, width: int) -> np.ndarray:
    """Keras's rotation about the image centre ((width-1)/2, (height-1)/2), one 8-vector per angle (radians)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    zeros = np.zeros_like(angle)
    return np.stack([cos, -sin, cx - cx * cos + cy * sin, sin, cos, cy - cx * sin - cy * cos, zeros, zeros], axis=1)


class RandomZoom(_AffineLayer):
    """Zooms each image about its centre: the view is scaled by 1 + u, u ~ U(height_factor) (a number f means
    (-f, f); positive zooms out, negative in), and by 1 + v, v ~ U(width_factor) across (None: the same as
    the height, keeping the aspect ratio), in training."""

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor("RandomZoom", "height_factor", height_factor, high=None)
        self.width_factor = None if width_factor is None else _factor("RandomZoom", "width_factor", width_factor,
                                                                              high=None)

    def matrices(self, n: int, height: int, width: int) -> np.ndarray:
        zy = 1.0 + self.rng.uniform(*self.height_factor, size=n)
        zx = zy if self.width_factor is None else 1.0 + self.rng.uniform(*self.width_factor, size=n)
        zeros = np.zeros(n)
        return np.stack([zx, zeros, (width - 1) / 2 * (1 - zx), zeros, zy, (height - 1) / 2 * (1 - zy), zeros,
                         zeros], axis=1)

    def get_config(self) -> dict[str, Any]:
        width = None if self.width_factor is None else list(self.width_factor)
        return {**super().get_config(), "height_factor": list(self.height_factor), "width_factor": width}


class RandomCrop(_RandomImageLayer):
    """Crops images to (height, width). Training, on larger images: one random window for the whole batch
    (as Keras 3). Otherwise (inference, or images not larger): the largest central window with the target's
    aspect ratio, resized (bilinear) to (height, width), as Keras documents it. (Keras 3.15 itself returns
    images unchanged in inference, so a model's output shape would change between fit and predict; and
    for small images it slices a (height, width) window instead of the aspect-ratio one before resizing.)"""

    def __init__(self, height: int, width: int, seed: int | None = None, data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = positive_int("RandomCrop", "height", height)
        self.width = positive_int("RandomCrop", "width", width)

    def transform(self, images: Any, training: bool) -> Any:
        _, in_h, in_w, _ = images.shape
        if training and in_h > self.height and in_w > self.width:
            top = int(self.rng.integers(0, in_h - self.height + 1))
            left = int(self.rng.integers(0, in_w - self.width + 1))
            return images[:, top:top + self.height, left:left + self.width]
        crop_h = max(min(in_h, int(in_w * self.height / self.width)), 1)
        crop_w = max(min(in_w, int(in_h * self.width / self.height)), 1)
        top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
        window = images[:, top:top + crop_h, left:left + crop_w]
        if (crop_h, crop_w) == (self.height, self.width):
            return window
        return resize(window, self.height, self.width)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(input_shape)
        h_axis = -3 if self.data_format == "channels_last" else -2
        shape[h_axis], shape[h_axis + 1] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height": self.height, "width": self.width}


__all__ = ["Normalization", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
           "Rescaling", "affine_transform", "resize", "rotation_matrices"]
