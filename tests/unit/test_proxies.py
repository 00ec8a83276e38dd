import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from shipline import httpapi
from shipline.compose import load_project as load_compose
from shipline.config import Proxy
from shipline.errors import DeployFailed
from shipline.proxies import (
    CaddyDriver,
    TraefikDriver,
    TraefikLabelsDriver,
    caddy_config,
    traefik_dynamic,
    traefik_rule,
)
from shipline.traefik_labels import LabelRouting, label_routing

from .fakes import FakeExecutor
from .trees import MemoryTree

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
    assert cfg["admin"] == {"listen": "localhost:2019"}  # the container's loopback: no other container reaches it


def test_traefik_switch_writes_then_renames_then_confirms(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor()
    answers = iter([(200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.4:8000"}]}}),
                    (200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.5:8000"}]}})])
    monkeypatch.setattr("shipline.proxies.httpapi.request", lambda *a, **k: next(answers))
    monkeypatch.setattr("shipline.proxies.time.sleep", lambda s: None)
    TraefikDriver(ex, PROXY, "shop", "/home/deploy/.shipline/shop/proxy").switch("backend", ["10.0.0.5:8000"])
    written = ex.files["/home/deploy/.shipline/shop/proxy/shop-backend.yml"][0]  # put() writes aside and renames
    assert b"http://10.0.0.5:8000" in written
    # ...aside, outside the watched directory: Traefik sees only the finished file (one reload, not two)
    assert ex.tmp_dirs["/home/deploy/.shipline/shop/proxy/shop-backend.yml"] == "/home/deploy/.shipline/shop"
    driver = TraefikDriver(ex, PROXY, "shop", "/home/deploy/.shipline/shop/proxy")
    assert driver.routed("backend") == ["10.0.0.5:8000"] and driver.routed("frontend") is None


def test_switch_not_confirmed_in_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor()
    proxy = PROXY.model_copy(update={"switch_timeout": 0.3})
    monkeypatch.setattr("shipline.proxies.httpapi.request",
                        lambda *a, **k: (200, {"loadBalancer": {"servers": [{"url": "http://10.0.0.4:8000"}]}}))
    with pytest.raises(DeployFailed, match=r"did not confirm backend -> 10.0.0.5:8000 .*10.0.0.4"):
        TraefikDriver(ex, proxy, "shop", "/p").switch("backend", ["10.0.0.5:8000"])


def test_caddy_switch_loads_routes_once_inside_the_container_and_confirms_there(monkeypatch: pytest.MonkeyPatch) -> None:
    caddy = PROXY.model_copy(update={"type": "caddy", "api": None})

    def no_api(*args: object, **kwargs: object) -> None:
        raise AssertionError("Caddy's admin API is not published: nothing may reach it from outside its container")

    monkeypatch.setattr("shipline.proxies.httpapi.request", no_api)
    ex = FakeExecutor([lambda a: (0, "10.0.0.5:8000\n") if a[:2] == ["docker", "exec"] else None])
    driver = CaddyDriver(ex, caddy, "shop", "/p", lambda: "proxy-1")
    driver.switch("backend", ["10.0.0.5:8000"])
    driver.switch("frontend", ["10.0.0.5:8000"])
    reloads = ex.ran("caddy", "reload")
    assert reloads == [["docker", "exec", "proxy-1", "caddy", "reload", "--config", "/etc/shipline/shop.caddy.json",
                        "--address", "localhost:2019"]]
    assert json.loads(ex.files["/p/shop.caddy.json"][0]) == caddy_config(caddy, "shop")
    assert ex.ran("cat")[0] == ["docker", "exec", "proxy-1", "cat", "/etc/shipline/shop-backend.upstream"]
    assert ex.files["/p/shop-backend.upstream"][0] == b"10.0.0.5:8000"
    assert driver.routed("backend") == ["10.0.0.5:8000"] and driver.routed("proxy") is None


def labels_routing() -> LabelRouting:
    text = (Path(__file__).resolve().parents[2] / "examples" / "traefik-labels" / "docker-compose.prod.yml").read_text()
    project = load_compose(["compose.yaml"], MemoryTree({"compose.yaml": text}), {"COMPOSE_PROJECT_NAME": "shop"}.get)
    routing = label_routing(project, project.active())
    assert routing is not None
    return routing


def test_label_routes_switch_writes_middlewares_first_and_confirms_every_backend_at_the_proxys_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor([lambda a: (0, json.dumps({"shop_web": {"IPAddress": "172.20.0.2"}})) if "inspect" in a else None])
    asked: list[tuple[str, str]] = []

    def traefik(ex_: object, address: str, method: str, path: str, body: object = None) -> tuple[int, object]:
        asked.append((address, path))
        doc = yaml.safe_load(ex.files["/h/proxy/shop-backend.yml"][0])
        return 200, {"loadBalancer": doc["http"]["services"]["backend"]["loadbalancer"]}

    monkeypatch.setattr(httpapi, "request", traefik)
    driver = TraefikLabelsDriver(ex, labels_routing(), "shop", "/h/proxy", lambda: "proxycid")
    driver.switch("backend", ["172.20.0.7:8000"])
    middlewares = yaml.safe_load(ex.files["/h/proxy/shop-middlewares.yml"][0])
    assert list(middlewares["http"]["middlewares"]) == ["security-headers"]
    doc = yaml.safe_load(ex.files["/h/proxy/shop-backend.yml"][0])
    assert doc["http"]["routers"]["backend"]["rule"] == "PathPrefix(`/api`)"
    assert doc["http"]["services"]["backend"]["loadbalancer"]["servers"] == [{"url": "http://172.20.0.7:8000"}]
    assert asked == [("172.20.0.2:8080", "/api/http/services/backend@file")]
    assert driver.routed("backend") == ["172.20.0.7:8000"]
    assert driver.routed("frontend") is None


def test_label_routes_switch_that_traefik_never_confirms_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor([lambda a: (0, json.dumps({"n": {"IPAddress": "172.20.0.2"}})) if "inspect" in a else None])
    monkeypatch.setattr(httpapi, "request", lambda *a, **k: (404, None))
    routing = labels_routing()
    driver = TraefikLabelsDriver(ex, replace(routing, switch_timeout=0.01), "shop", "/h/proxy", lambda: "proxycid")
    with pytest.raises(DeployFailed, match="did not confirm backend"):
        driver.switch("backend", ["172.20.0.7:8000"])


def test_caddy_routes_refused_fail_the_switch_with_caddys_words(monkeypatch: pytest.MonkeyPatch) -> None:
    caddy = PROXY.model_copy(update={"type": "caddy", "api": None, "switch_timeout": 0.3})
    monkeypatch.setattr("shipline.proxies.time.sleep", lambda s: None)
    ex = FakeExecutor([lambda a: (1, "Error: loading new config: http app module: bad listener\n")
                       if "reload" in a else None])
    with pytest.raises(DeployFailed, match=r"did not confirm its routes .*bad listener"):
        CaddyDriver(ex, caddy, "shop", "/p", lambda: "proxy-1").switch("backend", ["10.0.0.5:8000"])
