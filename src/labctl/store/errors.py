"""Errors the store reports to users."""

from __future__ import annotations

from labctl.errors import LabctlError


class StoreError(LabctlError):
    """The store cannot do what was asked (unknown run, bad settings, broken database, ...)."""


class LeaseConflict(LabctlError):
    """An instrument is leased by another live run; the message names the holder."""

    exit_code = 4
