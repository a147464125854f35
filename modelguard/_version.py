"""The version and the distribution name (the import package is ``modelguard``)."""

__version__ = "0.1.0"
#: The name on the package index: ``pip install modelguard-gateway`` (``modelguard`` there is
#: an unrelated project).
DISTRIBUTION = "modelguard-gateway"
