"""Run requests and who runs them: `submit` (CLI and API), the local runner (SQLite, this PC) and bench
workers on procrastinate (PostgreSQL, one per bench PC). DESIGN.md section 12."""

from labctl.queue.submit import submit

__all__ = ["submit"]
