"""The survey's errors: bad input and a folder that belongs to another survey."""

from __future__ import annotations

from blox_lat.errors import BloxLatError


class SurveyError(BloxLatError):
    """Bad input to a survey (a budget, a target, a folder), with what to do instead."""


class SurveyConflictError(SurveyError):
    """The survey folder holds a survey of another device, protocol or prior."""

