"""pytest fixtures: a verify-push-server for the test session, and a clean slate for each test.

The server is started from the binary named by VERIFY_PUSH_SERVER (default: `verify-push-server`
on PATH) with examples/quickstart-seed.yaml, so the account and the Service have fixed SIDs, on
the database VERIFY_PUSH_DATABASE_URL names (default: a SQLite file in a temporary folder).
Set VERIFY_PUSH_URL instead to run against a server you started yourself with that seed.
"""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from twilio.rest import Client

from emulator import Emulator

HERE = Path(__file__).resolve().parent
SEED = HERE.parent / "quickstart-seed.yaml"
ACCOUNT_SID = "AC00000000000000000000000000000e1a"
AUTH_TOKEN = "example-auth-token-0001"
SERVICE_SID = "VA00000000000000000000000000000e1a"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_url():
    if os.environ.get("VERIFY_PUSH_URL"):
        yield os.environ["VERIFY_PUSH_URL"]
        return
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        database = os.environ.get("VERIFY_PUSH_DATABASE_URL") or f"sqlite://{tmp}/verify-push.db"
        command = [
            os.environ.get("VERIFY_PUSH_SERVER", "verify-push-server"),
            "--bind", f"127.0.0.1:{port}",
            "--database-url", database,
            "--keys-file", f"{tmp}/verify-push.keys",
            "--seed", str(SEED),
        ]
        log = open(f"{tmp}/server.log", "w")
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited: {Path(tmp, 'server.log').read_text()}")
                try:
                    if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer /healthz within 30 s")
                time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


@pytest.fixture
def emulator(server_url):
    """The emulator's test controls, after a reset: each test starts from the seeded state.

    The clock is left where a test moved it: it only goes forward while the database holds
    records made at the later time (README, "Clock"), and nothing here needs real time."""
    emulator = Emulator(server_url, ACCOUNT_SID, AUTH_TOKEN)
    emulator.reset()
    return emulator


@pytest.fixture
def twilio(server_url):
    """The official twilio-python client, with only the Verify base URL pointed at the emulator."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.verify.base_url = server_url
    return client
