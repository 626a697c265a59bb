"""A stand-in for SIGKILL in the resume tests."""

import contextlib

import pytest

from simulpo.train import bookkeeping


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception`` handlers)."""


@contextlib.contextmanager
def killed_after_checkpoint(monkeypatch):
    """The run inside dies right after its first checkpoint is written (and must die)."""
    real_save = bookkeeping.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(bookkeeping, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        yield
    monkeypatch.setattr(bookkeeping, "save_checkpoint", real_save)
