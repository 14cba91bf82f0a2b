"""Batched online classification tasks (device tensors in, device tensors out) and their transforms."""

from vsml_gym.tasks.base import Task, TaskWrapper
from vsml_gym.tasks.catalog import build_task, register_task_builder, task_names

__all__ = ["Task", "TaskWrapper", "build_task", "register_task_builder", "task_names"]
