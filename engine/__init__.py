"""Trident: a GPU-accelerated machine-learning pipeline engine.

``engine.load(uri)`` returns an embedded predictor for a packaged model (see :mod:`engine.predictor`);
everything else lives in the stage sub-packages. Importing ``engine`` stays light.
"""
from __future__ import annotations

from typing import Any


def load(uri: str, tracking_uri: str | None = None, **kwargs: Any) -> Any:
    """Load a packaged model (``runs/<id>``, ``runs/<id>/model``, ``models:/<name>@<alias>`` or
    ``models:/<name>/<version>``) for in-process prediction; see :func:`engine.predictor.load`."""
    from engine.predictor import load as _load

    return _load(uri, tracking_uri=tracking_uri, **kwargs)
