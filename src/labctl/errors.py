"""The one exception tree. Everything labctl raises on purpose derives from `LabctlError`;
the CLI turns these into a clear message and an exit code, never a traceback."""

from __future__ import annotations


class LabctlError(Exception):
    """Base of every error labctl reports to a user."""

    exit_code = 1


class ConfigError(LabctlError):
    """A protocol, station or settings file is wrong (file:line:field in the message)."""

    exit_code = 2


class LimitViolation(LabctlError):
    """A value is outside an instrument or process limit; raised before any byte is sent."""

    exit_code = 2


class InstrumentError(LabctlError):
    """An instrument fault. `instrument` names the role or driver that failed."""

    exit_code = 3

    def __init__(self, message: str, *, instrument: str = "") -> None:
        super().__init__(f"{instrument}: {message}" if instrument else message)
        self.instrument = instrument
        self.detail = message


class TransportError(InstrumentError):
    """The link to the instrument failed (could not open, write failed, ...)."""


class InstrumentTimeout(TransportError):
    """No complete reply within the exchange's deadline. Input was flushed."""


class Disconnected(TransportError):
    """The port or socket went away."""


class MalformedReply(InstrumentError):
    """A reply that does not parse: garbage, wrong checksum, unexpected framing."""


class PartialReply(MalformedReply):
    """Some bytes arrived but the reply was cut short before its terminator or length."""


class ChecksumError(MalformedReply):
    """A framed reply whose checksum or CRC does not match."""


class InstrumentReportedError(InstrumentError):
    """The instrument answered with an error of its own (SCPI error queue, `?OOR`, `error:20`, CSR ...)."""

    def __init__(self, message: str, *, instrument: str = "", code: int | str | None = None) -> None:
        super().__init__(message, instrument=instrument)
        self.code = code


class InstrumentBusy(InstrumentError):
    """The instrument stays busy past the deadline for the operation."""


class SafeStateError(InstrumentError):
    """The instrument could not be confirmed in its safe state by read-back."""
