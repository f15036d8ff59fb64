"""The real-master fixture of the e2e suite, shared."""

from tests.e2e.conftest import salt_lab

__all__ = ["salt_lab"]
