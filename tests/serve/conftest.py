"""The serving tests' fixture: a server on a loopback port, stopped after the test."""

from __future__ import annotations

import pytest

from simulpo.serve.app import ServeConfig, Server, running


@pytest.fixture
def serve():
    """``serve(policy, **config)`` → the base URL of a running server (stopped after the test)."""
    stack = []

    def start(policy, metrics=None, **options):
        server = Server(policy, ServeConfig(**options), metrics)
        context = running(server)
        url = context.__enter__()
        stack.append(context)
        return server, url

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
