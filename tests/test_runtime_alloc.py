"""glibc allocator tuning: applied on Linux with glibc, and off when the environment says so."""

import ctypes
import sys

import pytest

from smacrl.runtime import tune_allocator


def test_env_var_turns_tuning_off(monkeypatch):
    monkeypatch.setenv("SMACRL_MALLOC_TUNING", "0")
    assert tune_allocator() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuning_applies_on_glibc(monkeypatch):
    try:
        ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    monkeypatch.delenv("SMACRL_MALLOC_TUNING", raising=False)
    assert tune_allocator() is True
    assert tune_allocator(enable=False) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_every_setting_is_tried_when_one_is_refused(monkeypatch):
    calls = []

    class FakeLibc:
        @staticmethod
        def mallopt(param, value):
            calls.append(param)
            return 0 if len(calls) == 1 else 1  # glibc refuses the first setting

    monkeypatch.delenv("SMACRL_MALLOC_TUNING", raising=False)
    monkeypatch.setattr("smacrl.runtime.ctypes.CDLL", lambda name: FakeLibc())
    assert tune_allocator() is False
    assert len(calls) == 3  # the refusal did not stop the trim threshold and top pad from being set
