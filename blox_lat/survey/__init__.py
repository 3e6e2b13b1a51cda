"""A full-space latency table for a new device in one command (``blox-lat survey``).

:func:`survey` (or :class:`Survey`) measures a balanced plan sized to a device-time budget,
fits a predictor, measures the least certain models in rounds until the budget is spent or
the intervals are narrow enough, and publishes the predictor file, a release (measured
``bench/<device>`` and predicted ``pred/<device>``) and a report; resumable after a kill.
:class:`SurveyConfig` is what it is asked (:func:`parse_duration` reads a budget);
:class:`SurveyResult` is the accounting: device time by kind from the journals beside the
measuring steps' wall time, and the cross-validated accuracy with the test-retest floor.
The one call into the harness's campaigns is ``_measure.measure_round``.

Method and outputs: docs/predict.md ("A new device in one command").
"""

from blox_lat.survey._accounting import DeviceTime, journal_time
from blox_lat.survey._config import SurveyConfig, parse_duration
from blox_lat.survey._errors import SurveyConflictError, SurveyError
from blox_lat.survey._events import (
    ProbeTimed,
    Published,
    RoundFitted,
    RoundMeasured,
    RoundPlanned,
    SurveyEvent,
    SurveyOpened,
    SurveyStopped,
)
from blox_lat.survey._layout import CAMPAIGN, PREDICTOR, PROBE, RELEASE, REPORT
from blox_lat.survey._result import SurveyResult
from blox_lat.survey._state import STATE_NAME, STATE_SCHEMA, SurveyState, read_state
from blox_lat.survey._survey import Survey, survey

__all__ = [
    "CAMPAIGN",
    "PREDICTOR",
    "PROBE",
    "RELEASE",
    "REPORT",
    "STATE_NAME",
    "STATE_SCHEMA",
    "DeviceTime",
    "ProbeTimed",
    "Published",
    "RoundFitted",
    "RoundMeasured",
    "RoundPlanned",
    "Survey",
    "SurveyConfig",
    "SurveyConflictError",
    "SurveyError",
    "SurveyEvent",
    "SurveyOpened",
    "SurveyResult",
    "SurveyState",
    "SurveyStopped",
    "journal_time",
    "parse_duration",
    "read_state",
    "survey",
]
