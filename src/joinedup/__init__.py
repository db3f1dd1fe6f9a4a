"""joinedup: lawful, audited data sharing for health and social care."""

__version__ = "0.1.0"
