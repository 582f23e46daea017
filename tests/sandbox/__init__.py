"""Tests of the sandbox servers (real HTTP and websocket clients on 127.0.0.1)."""
