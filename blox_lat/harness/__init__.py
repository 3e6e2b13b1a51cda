"""The measurement harness: the timing protocol, runners and resumable campaigns.

- Protocol (SPEC section 2): :class:`TimingProtocol` (100 groups x 10 runs, warm-up >= 10 runs
  and 0.5 s, noise threshold), :func:`trimmed_mean`, :func:`protocol_latency` and the
  :class:`Measurement` value object (raw samples + derived statistics + noise flags).
- Runners (:class:`Runner`): time inferences inside the process that runs the model;
  :class:`LocalWorkerRunner` (worker subprocess, crash/timeout isolation) and
  :class:`TransportRunner` (any :class:`blox_lat.devices.Transport`).
- :func:`check_device`: the steps of ``blox-lat devices check`` (connect, file round trip,
  runtime probe, device facts).
- Campaigns: :class:`Campaign` (or :func:`run_campaign`) appends to a resumable journal,
  telling its caller typed events (:class:`CampaignEvent`); :func:`read_journal` reads it back
  (tolerating a torn final line); :class:`MeasurementRecord` and :class:`EnvironmentRecord`
  are its lines, with :class:`AnchorsRecord` for the anchors of each set (``anchors``:
  :func:`choose_anchors`, :func:`set_level`).
"""

from blox_lat.harness._anchors import (
    DEFAULT_ANCHOR_EVERY,
    DEFAULT_ANCHORS,
    AnchorError,
    CampaignReference,
    choose_anchors,
    common_reference,
    set_level,
)
from blox_lat.harness._campaign import (
    Campaign,
    CampaignLockedError,
    CampaignSummary,
    campaign_status,
    run_campaign,
)
from blox_lat.harness._check import CheckStep, check_device
from blox_lat.harness._environment import collect_environment
from blox_lat.harness._events import (
    AnchorsTimed,
    CampaignEvent,
    CampaignStarted,
    DeviceLost,
    ModelDone,
    Remeasuring,
    SetDiscarded,
    SetFailed,
    SetProgress,
    SetResumed,
    ThermalWaited,
)
from blox_lat.harness._factory import get_runner
from blox_lat.harness._journal import JOURNAL_NAME, JOURNAL_SCHEMA, Journal, JournalError, read_journal
from blox_lat.harness._protocol import (
    DEFAULT_CV_THRESHOLD,
    LOCAL_INTERLEAVE,
    Measurement,
    MeasurementError,
    TimingProtocol,
    group_means,
    protocol_latency,
    trimmed_mean,
)
from blox_lat.harness._records import AnchorsRecord, EnvironmentRecord, MeasurementRecord
from blox_lat.harness._rules import (
    CampaignConflictError,
    CampaignSetupError,
    InterleaveError,
    check_campaign_dir,
    check_interleave,
    default_anchors,
    default_interleave,
    default_max_attempts,
)
from blox_lat.harness._runners import (
    CoolsDown,
    DeviceLostError,
    LocalWorkerRunner,
    MeasuresMany,
    ModelFailedError,
    ModelTimeoutError,
    Prefetching,
    Probing,
    ReportsRounds,
    ResumesRounds,
    Runner,
    RunnerUnavailableError,
    ThermalGuard,
    ThermalWait,
    TransportRunner,
    WorkerCrashedError,
)
from blox_lat.harness._timing import (
    RawRun,
    RuntimeSpec,
    RuntimeUnavailableError,
    get_runtime,
    list_runtimes,
    parse_cpus,
    register_runtime,
    time_callable,
    unregister_runtime,
)

__all__ = [
    "DEFAULT_ANCHOR_EVERY",
    "DEFAULT_ANCHORS",
    "AnchorsTimed",
    "CampaignReference",
    "common_reference",
    "CoolsDown",
    "ThermalWait",
    "ThermalWaited",
    "default_anchors",
    "default_max_attempts",
    "DEFAULT_CV_THRESHOLD",
    "JOURNAL_NAME",
    "AnchorError",
    "AnchorsRecord",
    "JOURNAL_SCHEMA",
    "Campaign",
    "CampaignConflictError",
    "CampaignEvent",
    "CampaignLockedError",
    "CampaignSetupError",
    "CampaignStarted",
    "CampaignSummary",
    "CheckStep",
    "DeviceLost",
    "DeviceLostError",
    "EnvironmentRecord",
    "InterleaveError",
    "Journal",
    "JournalError",
    "LOCAL_INTERLEAVE",
    "LocalWorkerRunner",
    "Measurement",
    "MeasurementError",
    "MeasurementRecord",
    "MeasuresMany",
    "ModelDone",
    "ModelFailedError",
    "ModelTimeoutError",
    "Prefetching",
    "Probing",
    "RawRun",
    "Remeasuring",
    "ReportsRounds",
    "ResumesRounds",
    "Runner",
    "RunnerUnavailableError",
    "RuntimeSpec",
    "RuntimeUnavailableError",
    "SetDiscarded",
    "SetFailed",
    "SetProgress",
    "SetResumed",
    "ThermalGuard",
    "TimingProtocol",
    "TransportRunner",
    "WorkerCrashedError",
    "campaign_status",
    "check_campaign_dir",
    "check_device",
    "check_interleave",
    "choose_anchors",
    "collect_environment",
    "default_interleave",
    "get_runner",
    "get_runtime",
    "group_means",
    "list_runtimes",
    "protocol_latency",
    "read_journal",
    "register_runtime",
    "run_campaign",
    "parse_cpus",
    "set_level",
    "time_callable",
    "unregister_runtime",
    "trimmed_mean",
]
