"""Presign: listing verification and pre-signing risk checks.

`risk` holds reports, the decision policy, commitments, the gate, the app factory and the API.
"""

from risk.app import create_app

__all__ = ["create_app"]
