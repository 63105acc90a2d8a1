"""The root of every error the DSP package raises."""


class DspError(Exception):
    """Base class of all errors raised by `dsp`."""


class DspInputError(DspError, ValueError):
    """An array had the wrong shape, dtype or value range: the caller passed bad input."""
