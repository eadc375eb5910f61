"""Config schema of export, serving and deployment gates (conf/deploy; registered by engine.config.schema)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ExportConfig:
    """How a packaged model becomes ``<repository>/<name>/<version>/`` in the Triton model repository."""

    #: The Triton model repository (relative paths: from the working folder).
    repository: str = "triton_models"
    #: ``single`` (one python model: features + estimator), ``ensemble`` (features model then estimator
    #: model) or ``auto`` (= single: measured faster, see ``python -m bench serve --layout``).
    layout: str = "auto"
    #: Largest batch one request (or one dynamic batch) may carry.
    max_batch_size: int = 256
    dynamic_batching: bool = True
    #: How long the dynamic batcher may hold a request to build a larger batch.
    max_queue_delay_us: int = 200
    #: Model instances (each a python stub process, KIND_CPU).
    instances: int = 1
    #: Triton type of numeric input columns: TYPE_FP64 or TYPE_FP32.
    numeric_type: str = "TYPE_FP64"
    #: onnxruntime intra-op threads per model instance.
    intra_op_threads: int = 1
    #: Held-out rows stored with each exported version (sample.json): parity check, probes, gates.
    sample_rows: int = 256
    #: Parity of the exported folder with its source before it is written: largest score difference.
    parity_atol: float = 1e-9


@dataclass
class ServerConfig:
    """The Triton server started by ``trident serve`` (bound to ``host``; port 0 = a free port)."""

    host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    #: A tritonserver binary; unset: ``tritonserver`` on PATH, else the one of the serving environment.
    binary: Optional[str] = None
    #: The NumPy-1.26 serving venv (EXECUTION_ENV_PATH of every model); relative: from the project root.
    env_path: str = ".venv-triton"
    startup_timeout_s: float = 60.0
    #: Seconds between two health checks (readiness + a probe request per served model); 0 = no watchdog.
    watch_interval_s: float = 3.0
    probe_timeout_s: float = 5.0
    #: Restarts of a dead server allowed before ``trident serve`` gives up.
    max_restarts: int = 5
    log_verbose: int = 0
    extra_args: list[str] = field(default_factory=list)


@dataclass
class ParityGateConfig:
    """Served predictions against the embedded predictor (PipelineRuntime) on held-out rows."""

    enabled: bool = True
    rows: int = 256
    #: Largest absolute score difference allowed (labels must be equal).
    score_atol: float = 1e-6


@dataclass
class IntegrationGateConfig:
    """Malformed requests get clean errors (or the documented answer); the server keeps serving."""

    enabled: bool = True


@dataclass
class LoadTestConfig:
    """Closed loop at each concurrency, then an open loop at a constant rate; SLOs on the results."""

    enabled: bool = True
    concurrencies: list[int] = field(default_factory=lambda: [1, 8])
    #: p99 latency ceiling (ms) per concurrency; one value applies to all.
    p99_ms: list[float] = field(default_factory=lambda: [20.0, 50.0])
    #: Largest share of failed requests allowed.
    max_error_rate: float = 0.0
    #: Seconds and request cap of each closed-loop run.
    duration_s: float = 2.0
    max_requests: int = 20000
    rows_per_request: int = 1
    warmup_requests: int = 20
    #: Open loop: requests per second (0 = skip), its duration and its p99 ceiling (ms).
    open_loop_rate: float = 100.0
    open_loop_duration_s: float = 2.0
    open_loop_p99_ms: float = 50.0
    request_timeout_s: float = 5.0


@dataclass
class DeployConfig:
    """Export, serving and deployment gates (conf/deploy)."""

    #: ``trident run`` ends by deploying the registered model.
    enabled: bool = False
    #: Registered model to deploy (MLflow); unset: the model named by the packaged folder / the run.
    model_name: Optional[str] = None
    #: The alias deployed by default and the alias that follows the served version.
    candidate_alias: str = "challenger"
    champion_alias: str = "champion"
    #: Held-out rows for the gates (CSV/Parquet with the raw input columns); unset: the run's held-out
    #: data when found, else the rows stored with the exported version.
    data: Optional[str] = None
    #: Where deployment records go (plus ``runs/<run_id>/deployments/`` when the run folder exists).
    records_dir: str = "deployments"
    #: ``trident deploy`` starts a background server when none runs on the repository.
    start_server: bool = True
    #: After ``trident run`` deployed through a server it started, keep that server running (false: stop
    #: it at the end of the run, e.g. in tests).
    keep_serving: bool = True
    #: Keep the previously served version loaded (idle) after a promotion, so that a rollback to it
    #: switches in milliseconds; costs one idle model instance.
    warm_standby: bool = True
    export: ExportConfig = field(default_factory=ExportConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    parity: ParityGateConfig = field(default_factory=ParityGateConfig)
    integration: IntegrationGateConfig = field(default_factory=IntegrationGateConfig)
    load_test: LoadTestConfig = field(default_factory=LoadTestConfig)
