"""Unit tests of the HTTP layer; no database needed (a fake store stands in)."""

from __future__ import annotations

import json
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

from app.config import Settings
from app.web import App, BadRequest, make_server, parse_new_item


class FakeStore:
    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy
        self.items: list[dict] = []

    def ping(self) -> None:
        if not self.healthy:
            raise OSError("connection refused")

    def list_items(self) -> list[dict]:
        return list(self.items)

    def add_item(self, text: str) -> dict:
        item = {"id": len(self.items) + 1, "text": text, "created_at": "2024-01-01T00:00:00+00:00"}
        self.items.append(item)
        return item


class ParseNewItemTest(unittest.TestCase):
    def test_accepts_text_and_strips_it(self) -> None:
        self.assertEqual(parse_new_item(b'{"text": "  hello "}'), "hello")

    def test_rejects_bad_bodies(self) -> None:
        for body in (b"", b"not json", b"[]", b'{"text": 3}', b'{"text": "   "}', b'{"other": "x"}'):
            with self.subTest(body=body), self.assertRaises(BadRequest):
                parse_new_item(body)

    def test_rejects_overlong_text(self) -> None:
        with self.assertRaises(BadRequest):
            parse_new_item(json.dumps({"text": "x" * 1001}).encode())


class AppTest(unittest.TestCase):
    def test_version(self) -> None:
        self.assertEqual(App(FakeStore(), "abc123").handle("GET", "/api/version", b""), (200, {"version": "abc123"}))

    def test_health_reports_database_failure(self) -> None:
        status, body = App(FakeStore(healthy=False), "v").handle("GET", "/api/health", b"")
        self.assertEqual(status, 503)
        self.assertEqual(body["database"], "unreachable")

    def test_unknown_path_and_method(self) -> None:
        app = App(FakeStore(), "v")
        self.assertEqual(app.handle("GET", "/nope", b"")[0], 404)
        self.assertEqual(app.handle("DELETE", "/api/items", b"")[0], 405)


class ServerTest(unittest.TestCase):
    """The real threaded HTTP server on an ephemeral loopback port."""

    def setUp(self) -> None:
        self.store = FakeStore()
        self.server = make_server(App(self.store, "deadbeef"), host="127.0.0.1", port=0)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def test_post_then_list_items(self) -> None:
        self.assertEqual(self.request("GET", "/api/items"), (200, []))
        status, item = self.request("POST", "/api/items", {"text": "first"})
        self.assertEqual(status, 201)
        self.assertEqual(item["text"], "first")
        self.assertEqual(self.request("GET", "/api/items"), (200, [item]))

    def test_invalid_post_is_400(self) -> None:
        status, body = self.request("POST", "/api/items", {"text": ""})
        self.assertEqual(status, 400)
        self.assertIn("error", body)

    def test_slow_request_waits_and_answers(self) -> None:
        status, body = self.request("GET", "/api/slow?seconds=0.2")
        self.assertEqual(status, 200)
        self.assertEqual(body["slept"], 0.2)

    def test_health_and_version(self) -> None:
        self.assertEqual(self.request("GET", "/api/health"), (200, {"status": "ok", "database": "ok"}))
        self.assertEqual(self.request("GET", "/api/version"), (200, {"version": "deadbeef"}))


class SettingsTest(unittest.TestCase):
    def test_from_env_and_password_not_in_repr(self) -> None:
        s = Settings.from_env({"DATABASE_HOST": "db", "DATABASE_PASSWORD": "s3cret", "GIT_SHA": "abc"})
        self.assertEqual((s.database_host, s.version, s.database_port), ("db", "abc", 5432))
        self.assertNotIn("s3cret", repr(s))

    def test_empty_git_sha_means_unknown(self) -> None:
        self.assertEqual(Settings.from_env({"GIT_SHA": ""}).version, "unknown")

    def test_password_from_a_secret_file(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
            f.write("from-file\n")
            f.flush()
            s = Settings.from_env({"DATABASE_PASSWORD_FILE": f.name, "DATABASE_PASSWORD": "ignored"})
        self.assertEqual(s.database_password, "from-file")


if __name__ == "__main__":
    unittest.main()
