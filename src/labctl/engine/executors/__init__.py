"""Step executors, one small module per step kind or family; importing this registers them all."""

from labctl.engine.executors import bath, cycling, eis, immerse, operator, sputter, timing  # noqa: F401
from labctl.engine.executors.base import REGISTRY, Executor, StepContext, executor_for

__all__ = ["REGISTRY", "Executor", "StepContext", "executor_for"]
