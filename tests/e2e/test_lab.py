"""Smoke test of the lab itself: a real master reaches all three minions."""

from __future__ import annotations

import json

import pytest

from lab.saltlab import SaltLab

pytestmark = pytest.mark.e2e


def test_ping_all_minions(salt_lab: SaltLab) -> None:
    result = salt_lab.salt("*", "test.ping", "--out=json", "--static", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == dict.fromkeys(salt_lab.minion_ids, True)
