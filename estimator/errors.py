"""The one error type a user sees: its message names the problem and the fix in one line."""


class EstimatorError(ValueError):
    """Bad input: the CLI prints ``error: <message>`` and exits with status 2; the Python API raises it
    (a ValueError) for every bad argument, with the same message."""


class MethodNotApplicableError(EstimatorError):
    """A method the model's layout cannot take (DoRA on fused expert tensors): its row is left out, with why."""
