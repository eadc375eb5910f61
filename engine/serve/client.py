"""A thin client of a served Trident pipeline over ``tritonclient.grpc``: DataFrame in, DataFrame out.

The model's inputs (column -> tensor name, kind, Triton type) come from the server's model config,
so nothing but the URL and the model name is needed. Numeric columns travel as FP64 (or FP32)
``[rows, 1]`` tensors with NaN for missing; categorical and datetime columns as BYTES ``[rows, 1]``
tensors of UTF-8 text with ``b""`` for missing. Frames larger than the model's ``max_batch_size`` are
sent in several requests.

Example
-------
>>> from engine.serve.client import PipelineClient                  # doctest: +SKIP
>>> with PipelineClient("127.0.0.1:8001", "credit") as c:           # doctest: +SKIP
...     scores = c.predict(frame)          # DataFrame with columns score, label
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import TridentError

TRITON_TO_WIRE = {"TYPE_FP64": "FP64", "TYPE_FP32": "FP32", "TYPE_STRING": "BYTES", "TYPE_INT64": "INT64"}
WIRE_TO_NUMPY = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}


class ClientError(TridentError):
    """The server refused a request or cannot be reached (the message is the server's)."""


@dataclass
class ModelSchema:
    """What a served pipeline takes and returns."""

    name: str
    columns: list[dict[str, str]]  # [{"name", "kind", "tensor"}]
    wire_types: dict[str, str]  # tensor -> FP64 | FP32 | BYTES
    outputs: dict[str, str]  # output -> wire type
    max_batch_size: int

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]


def _grpc() -> Any:
    import tritonclient.grpc as grpcclient

    return grpcclient


def schema_from_config(cfg: Any) -> ModelSchema:
    """:class:`ModelSchema` from a ``ModelConfig`` protobuf exported by Trident."""
    from engine.export import triton_config as tc

    names = {i.name: tc.pb().DataType.Name(i.data_type) for i in cfg.input}
    columns = tc.column_specs(cfg)
    if not columns:
        raise ClientError(f"model {cfg.name!r} was not exported by Trident (no {tc.PARAM_COLUMNS} parameter)")
    outs = {o.name: TRITON_TO_WIRE.get(tc.pb().DataType.Name(o.data_type), "BYTES") for o in cfg.output}
    return ModelSchema(name=cfg.name, columns=columns,
                       wire_types={t: TRITON_TO_WIRE[d] for t, d in names.items()}, outputs=outs,
                       max_batch_size=int(cfg.max_batch_size))


def encode_text(values: np.ndarray) -> np.ndarray:
    """Object array of ``str``/``None`` -> object array of UTF-8 bytes (``b""`` for missing)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        out[i] = b"" if v is None else (v if isinstance(v, bytes) else str(v).encode("utf-8"))
    return out


def make_inputs(schema: ModelSchema, columns: dict[str, np.ndarray]) -> list[Any]:
    """``InferInput`` list (one ``[rows, 1]`` tensor per column) for ``columns`` (engine.serve.columns form)."""
    grpcclient = _grpc()
    inputs = []
    for spec in schema.columns:
        wire = schema.wire_types[spec["tensor"]]
        values = columns[spec["name"]]
        if wire == "BYTES":
            arr = encode_text(np.asarray(values, dtype=object)).reshape(-1, 1)
        else:
            arr = np.asarray(values, dtype=WIRE_TO_NUMPY[wire]).reshape(-1, 1)
        t = grpcclient.InferInput(spec["tensor"], list(arr.shape), wire)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    return inputs


def decode_outputs(result: Any, schema: ModelSchema) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, wire in schema.outputs.items():
        a = result.as_numpy(name)
        if a is None:
            raise ClientError(f"model {schema.name!r} returned no output {name!r}")
        a = a.reshape(-1)
        if wire == "BYTES":
            a = np.array([x.decode("utf-8") if isinstance(x, bytes) else x for x in a.tolist()], dtype=object)
        out[name] = a
    return out


class PipelineClient:
    """gRPC client of one served pipeline.

    Parameters
    ----------
    url : str
        ``host:port`` of Triton's gRPC endpoint.
    model : str
        Served model name.
    version : int, optional
        A specific version; default: the one the server serves.
    timeout_s : float
        Per-request client timeout.
    """

    def __init__(self, url: str, model: str, version: int | None = None, timeout_s: float = 30.0) -> None:
        self.url = url
        self.model = model
        self.version = "" if version is None else str(int(version))
        self.timeout_s = float(timeout_s)
        self._client = _grpc().InferenceServerClient(url=url)
        self._schema: ModelSchema | None = None

    @classmethod
    def for_repository(cls, repository: str | os.PathLike, model: str | None = None,
                       version: int | None = None, timeout_s: float = 30.0) -> "PipelineClient":
        """A client of the server running on ``repository`` (``trident serve``'s server.json); ``model``
        defaults to the only served model."""
        from engine.serve import state

        info = state.read_server_info(repository)
        if not info or not state.pid_alive(info.get("pid")):
            raise ClientError(f"no Triton server is running on {repository}; start one with `trident serve`")
        if model is None:
            served = sorted(state.read_served(repository)["models"])
            if len(served) != 1:
                raise ClientError(f"{repository} serves {served or 'no model'}; name the model (--model)")
            model = served[0]
        return cls(info["grpc_url"], model, version=version, timeout_s=timeout_s)

    def __enter__(self) -> "PipelineClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a dead channel is not an error
            pass

    @property
    def schema(self) -> ModelSchema:
        if self._schema is None:
            try:
                cfg = self._client.get_model_config(self.model, self.version).config
            except Exception as exc:  # noqa: BLE001 - InferenceServerException and channel errors
                raise ClientError(f"model {self.model!r} at {self.url}: {_message(exc)}") from None
            self._schema = schema_from_config(cfg)
        return self._schema

    def infer(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request: ``{column: array}`` -> ``{"score": ..., "label": ...}``."""
        schema = self.schema
        try:
            result = self._client.infer(self.model, make_inputs(schema, columns), model_version=self.version,
                                        client_timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise ClientError(f"model {self.model!r}: {_message(exc)}") from None
        return decode_outputs(result, schema)

    def predict_columns(self, columns: dict[str, np.ndarray], batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Score any number of rows, in requests of at most ``batch_size`` (default: max_batch_size)."""
        from engine.serve.columns import n_rows, take

        n = n_rows(columns)
        size = int(batch_size or self.schema.max_batch_size or n or 1)
        if n <= size:
            return self.infer(columns)
        parts = [self.infer(take(columns, slice(s, s + size))) for s in range(0, n, size)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def predict(self, frame: Any, batch_size: int | None = None) -> Any:
        """DataFrame with the raw input columns -> DataFrame ``score``, ``label`` (same index)."""
        import pandas as pd

        from engine.serve.columns import to_columns

        out = self.predict_columns(to_columns(frame, self.schema.columns), batch_size=batch_size)
        return pd.DataFrame(out, index=frame.index)


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else (msg or str(exc))
    return " ".join(str(text).split())
