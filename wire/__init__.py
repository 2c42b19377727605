"""The contract both sides of the wire read: the agent and the reference host import it, it
imports nothing of ours."""

from .session import SessionStatement, StatementError, sha256

__all__ = ["SessionStatement", "StatementError", "sha256"]
