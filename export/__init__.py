"""ONNX and TensorRT export of YOLO-LAT models, importable as ``yolo_lat.export``.

* :func:`export`: ``format=onnx|engine``, ``ela_op=standard|custom``, Ultralytics' export settings.
* :func:`attach_ela_functions`: model-local ONNX function for ``yolo_lat::ELA`` nodes.
* :func:`build_engine`: TensorRT 10.x/11.x engine building; :func:`register_ela_plugin`.
"""

from .exporter import FORMATS, export
from .onnx_functions import attach_ela_functions, ela_nodes
from .tensorrt import EngineSettings, build_engine, tensorrt_major
from .trt_plugin import PLUGIN_ID, register_ela_plugin

__all__ = [
    "FORMATS",
    "PLUGIN_ID",
    "EngineSettings",
    "attach_ela_functions",
    "build_engine",
    "ela_nodes",
    "export",
    "register_ela_plugin",
    "tensorrt_major",
]
