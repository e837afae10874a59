"""Exporting models for inference elsewhere: ONNX, Keras 3's way (``model.export(path, format="onnx")``).

The ONNX converter is a table (:mod:`shendu.export.converters`): one small function per layer kind that emits
that layer's nodes with a :class:`~shendu.export.graph.GraphBuilder`. A layer without a converter stops the
export with its name, its class and how to add one (:func:`register_onnx_converter`).

``onnx`` is an optional dependency (``pip install 'shendu[onnx]'``), imported only when exporting.
"""

from __future__ import annotations

from shendu.export.converters import CONVERTERS, register_onnx_converter
from shendu.export.graph import DEFAULT_OPSET, GraphBuilder
from shendu.export.onnx_export import build_onnx_model, export_onnx

#: the formats ``Model.export`` writes
EXPORT_FORMATS = ("onnx",)

__all__ = ["CONVERTERS", "DEFAULT_OPSET", "EXPORT_FORMATS", "GraphBuilder", "build_onnx_model", "export_onnx",
           "register_onnx_converter"]
