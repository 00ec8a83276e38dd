import pytest
import yaml

from shipline.config import Proxy
from shipline.errors import DeployFailed
from shipline.proxies import CaddyDriver, TraefikDriver, caddy_config, traefik_dynamic, traefik_rule

from .fakes import FakeExecutor

PROXY = Proxy.model_validate({"type": "traefik", "service": "proxy", "api": "127.0.0.1:8081",
                              "routes": {"backend": {"path": "/api", "port": 8000},
                                         "frontend": {"path": "/", "port": 8080, "host": "shop.example"}}})


def test_traefik_file_routes_exactly_the_given_endpoints() -> None:
    doc = yaml.safe_load(traefik_dynamic("shop", "backend", PROXY.routes["backend"], ["10.0.0.5:8000"], PROXY))
    assert doc == {"http": {
        "routers": {"shop-backend": {"rule": "PathPrefix(`/api`)", "service": "shop-backend",
                                     "entryPoints": ["websecure"], "tls": {}}},
        "services": {"shop-backend": {"loadBalancer": {"servers": [{"url": "http://10.0.0.5:8000"}]}}}}}


def test_traefik_rule_with_host() -> None:
    assert traefik_rule(PROXY.routes["frontend"]) == "Host(`shop.example`) && PathPrefix(`/`)"


def test_caddy_routes_longest_path_first_and_dial_per_request_files() -> None:
    cfg = caddy_config(PROXY.model_copy(update={"type": "caddy"}), "shop")
    routes = cfg["apps"]["http"]["servers"]["shipline"]["routes"]
    assert [r["@id"] for r in routes] == ["shipline-backend", "shipline-frontend"]
    assert routes[0]["match"] == [{"path": ["/api", "/api/*"]}]
    assert routes[1]["match"] == [{"host": ["shop.example"]}]
    assert routes[0]["handle"][0]["upstreams"] == [{"dial": "{file./etc/shipline/shop-backend.upstream}"}]
    assert cfg["admin"] == {"listen": "0.0.0.0:2019"}


def test_traefik_switch_writes_then_renames_then_confirms(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor()
    answers = iter([(200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.4:8000"}]}}),
                    (200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.5:8000"}]}})])
    monkeypatch.setattr("shipline.proxies.httpapi.request", lambda *a, **k: next(answers))
    monkeypatch.setattr("shipline.proxies.time.sleep", lambda s: None)
    TraefikDriver(ex, PROXY, "shop", "/home/deploy/.shipline/shop/proxy").switch("backend", ["10.0.0.5:8000"])
    written = ex.files["/home/deploy/.shipline/shop/proxy/shop-backend.yml"][0]  # put() writes aside and renames
    assert b"http://10.0.0.5:8000" in written
    driver = TraefikDriver(ex, PROXY, "shop", "/home/deploy/.shipline/shop/proxy")
    assert driver.routed("backend") == ["10.0.0.5:8000"] and driver.routed("frontend") is None


def test_switch_not_confirmed_in_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor()
    proxy = PROXY.model_copy(update={"switch_timeout": 0.3})
    monkeypatch.setattr("shipline.proxies.httpapi.request",
                        lambda *a, **k: (200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.4:8000"}]}}))
    with pytest.raises(DeployFailed, match=r"did not confirm backend -> 10.0.0.5:8000 .*10.0.0.4"):
        TraefikDriver(ex, proxy, "shop", "/p").switch("backend", ["10.0.0.5:8000"])


def test_caddy_switch_loads_routes_once_and_confirms_inside_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    caddy = PROXY.model_copy(update={"type": "caddy"})
    wanted = caddy_config(caddy, "shop")
    calls: list[str] = []

    def api(ex: object, address: str, method: str, path: str, body: object = None) -> tuple[int, object]:
        calls.append(f"{method} {path}")
        return (200, wanted) if len(calls) > 1 else (200, {})

    monkeypatch.setattr("shipline.proxies.httpapi.request", api)
    ex = FakeExecutor([lambda a: (0, "10.0.0.5:8000\n") if a[:2] == ["docker", "exec"] else None])
    driver = CaddyDriver(ex, caddy, "shop", "/p", lambda: "proxy-1")
    driver.switch("backend", ["10.0.0.5:8000"])
    driver.switch("frontend", ["10.0.0.5:8000"])
    assert calls == ["GET /config/", "POST /load", "GET /config/"]
    assert ex.ran("docker", "exec")[0] == ["docker", "exec", "proxy-1", "cat", "/etc/shipline/shop-backend.upstream"]
    assert ex.files["/p/shop-backend.upstream"][0] == b"10.0.0.5:8000"
    assert driver.routed("backend") == ["10.0.0.5:8000"] and driver.routed("proxy") is None
