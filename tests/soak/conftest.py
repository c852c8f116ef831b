"""The soak runs on the fault suite's stack with every setting at its default."""

from tests.faults.conftest import default_stack, pytest_terminal_summary

__all__ = ["default_stack", "pytest_terminal_summary"]
