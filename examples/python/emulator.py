"""A small client for verify-push-emulator's test controls (`/_emulator/…`, README "Test
controls"): plain HTTP with the account's Basic auth, so the same calls work from any language.
Copy it into your own tests."""

import json
import queue
import threading

import requests


class EmulatorError(Exception):
    """An error answer of the emulator, in Twilio's envelope (`code`, `message`, `status`)."""

    def __init__(self, body):
        super().__init__(f"{body.get('status')} {body.get('code')}: {body.get('message')}")
        self.status = body.get("status")
        self.code = body.get("code")


class Emulator:
    def __init__(self, url, account_sid, auth_token):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.auth = (account_sid, auth_token)

    def _call(self, method, path, **data):
        response = self.http.request(method, f"{self.url}/_emulator/{path}", data=data or None, timeout=10)
        if response.status_code >= 400:
            raise EmulatorError(response.json())
        return response.json() if response.content else None

    def reset(self):
        """Deletes everything of the account but the account itself, its API keys and what the
        seed file gives it."""
        return self._call("POST", "Reset")

    def clock(self):
        return self._call("GET", "Clock")

    def set_clock(self, **change):
        """One of advance=<seconds>, set=<ISO 8601>, freeze=True|False, reset=True."""
        form = {key.capitalize(): str(value).lower() if isinstance(value, bool) else str(value)
                for key, value in change.items()}
        return self._call("POST", "Clock", **form)

    def create_device(self, service_sid, identity, style="android", **extra):
        """A virtual device enrolled (and verified) through the same protocol as the mobile SDKs."""
        return self._call("POST", "Devices", ServiceSid=service_sid, Identity=identity, Style=style, **extra)

    def device_challenges(self, factor_sid, status=None):
        query = f"?Status={status}" if status else ""
        return self._call("GET", f"Devices/{factor_sid}/Challenges{query}")

    def answer(self, factor_sid, challenge_sid="latest", status="approved"):
        """The device signs its answer and sends it as the SDK would."""
        return self._call("POST", f"Devices/{factor_sid}/Challenges/{challenge_sid}", Status=status)

    def events(self, **filters):
        """Opens the live event stream; returns an `EventStream` (use it in a `with`)."""
        return EventStream(self, filters)


class EventStream:
    """Reads `/_emulator/Events` (Server-Sent Events) on a thread; `next(type, timeout)` waits
    for the next event, optionally of one type."""

    def __init__(self, emulator, filters):
        self.response = emulator.http.get(
            f"{emulator.url}/_emulator/Events", params=filters, stream=True, timeout=(10, None)
        )
        if self.response.status_code != 200:
            raise EmulatorError(self.response.json())
        self.queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        kind, data = None, []
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self.queue.put((kind, json.loads("\n".join(data))))
                    kind, data = None, []
        except (requests.RequestException, ValueError, AttributeError):
            pass  # closed by __exit__
        self.queue.put((None, None))

    def next(self, event_type=None, timeout=5.0):
        while True:
            kind, event = self.queue.get(timeout=timeout)
            if kind is None and event is None:
                raise EOFError("the event stream ended")
            if event_type is None or kind == event_type:
                return event

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.response.close()
