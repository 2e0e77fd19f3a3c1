"""Shipped ONNX models and their model cards (``<name>-<version>.onnx`` / ``.json`` / ``.md``).

Built by ``citybrain models train --out models/artifacts``; load with
``brain.anomaly.load_model(name, version, models.artifacts.DIR)``.
"""
from pathlib import Path

#: the folder holding the shipped models
DIR = Path(__file__).resolve().parent
