"""The measurement harness: the timing protocol, runners and resumable campaigns.

- Protocol (SPEC section 2): :class:`TimingProtocol` (100 groups x 10 runs, warm-up >= 10 runs
  and 0.5 s, noise threshold), :func:`trimmed_mean`, :func:`protocol_latency` and the
  :class:`Measurement` value object (raw samples + derived statistics + noise flags).
- Runners (:class:`Runner`): time inferences inside the process that runs the model;
  :class:`LocalWorkerRunner` (worker subprocess, crash/timeout isolation) and
  :class:`TransportRunner` (any :class:`blox_lat.devices.Transport`).
- Campaigns: :func:`run_campaign` appends to a resumable journal; :func:`read_journal`
  reads it back (tolerating a torn final line).
"""

from blox_lat.harness._campaign import (
    CampaignConflictError,
    CampaignLockedError,
    CampaignSummary,
    campaign_status,
    run_campaign,
)
from blox_lat.harness._environment import collect_environment
from blox_lat.harness._journal import JOURNAL_NAME, SCHEMA_VERSION, Journal, JournalError, read_journal
from blox_lat.harness._protocol import (
    LOCAL_INTERLEAVE,
    Measurement,
    MeasurementError,
    TimingProtocol,
    group_means,
    protocol_latency,
    trimmed_mean,
)
from blox_lat.harness._runners import (
    DeviceLostError,
    ThermalGuard,
    LocalWorkerRunner,
    ModelFailedError,
    ModelTimeoutError,
    Runner,
    RunnerUnavailableError,
    TransportRunner,
    WorkerCrashedError,
    get_runner,
)
from blox_lat.harness._timing import (
    RawRun,
    RuntimeSpec,
    RuntimeUnavailableError,
    get_runtime,
    list_runtimes,
    parse_cpus,
    time_callable,
)

__all__ = [
    "JOURNAL_NAME",
    "SCHEMA_VERSION",
    "CampaignConflictError",
    "CampaignLockedError",
    "CampaignSummary",
    "DeviceLostError",
    "Journal",
    "JournalError",
    "LOCAL_INTERLEAVE",
    "LocalWorkerRunner",
    "Measurement",
    "MeasurementError",
    "ModelFailedError",
    "ModelTimeoutError",
    "RawRun",
    "Runner",
    "RunnerUnavailableError",
    "RuntimeSpec",
    "RuntimeUnavailableError",
    "ThermalGuard",
    "TimingProtocol",
    "TransportRunner",
    "WorkerCrashedError",
    "campaign_status",
    "collect_environment",
    "get_runner",
    "get_runtime",
    "group_means",
    "list_runtimes",
    "protocol_latency",
    "read_journal",
    "run_campaign",
    "parse_cpus",
    "time_callable",
    "trimmed_mean",
]
