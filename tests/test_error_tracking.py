"""Optional Sentry: off without SENTRY_DSN; with one, an error reaches the DSN's server (a fake
on 127.0.0.1 here, no network) with secrets masked and no personal data."""

from __future__ import annotations

import gzip
import http.server
import os
import subprocess
import sys
import textwrap
import threading

import sentry_sdk
from django.conf import settings


class FakeSentry(http.server.ThreadingHTTPServer):
    """Accepts envelopes at /api/<project>/envelope/ and keeps their bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                server.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


def test_without_a_dsn_nothing_is_started():
    assert settings.SENTRY_DSN == ""
    assert not sentry_sdk.get_client().is_active()


def test_with_a_dsn_errors_are_sent_with_secrets_masked():
    script = textwrap.dedent(
        """
        import django, sentry_sdk
        django.setup()
        from config.redaction import secret_register
        secret_register("sk-live-0123456789abcdef")
        assert "django" in sentry_sdk.get_client().integrations
        assert "celery" in sentry_sdk.get_client().integrations
        try:
            raise RuntimeError("upstream refused key sk-live-0123456789abcdef")
        except RuntimeError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush(10)
        """
    )
    with FakeSentry() as server:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.server_address[1]}/42",
            "SENTRY_ENVIRONMENT": "test-env",
        }
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-2000:]
        sent = b"\n".join(server.bodies).decode("utf-8", "replace")
    assert "upstream refused key" in sent
    assert "test-env" in sent
    assert "sk-live-0123456789abcdef" not in sent
