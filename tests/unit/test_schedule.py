from shipline.schedule import waves

EXAMPLE = {"backend": ["db"], "frontend": [], "db": [], "proxy": []}


def test_independent_services_share_a_wave_and_dependents_wait() -> None:
    assert waves(["proxy", "db", "backend", "frontend"], EXAMPLE, first="proxy") == [
        ["proxy"], ["db", "frontend"], ["backend"]]


def test_without_a_proxy_everything_independent_goes_at_once() -> None:
    assert waves(["a", "b", "c"], {}) == [["a", "b", "c"]]


def test_chains_keep_their_order() -> None:
    deps = {"api": ["db", "cache"], "worker": ["api"], "web": ["api"], "cache": [], "db": []}
    assert waves(["db", "cache", "api", "worker", "web"], deps) == [["db", "cache"], ["api"], ["worker", "web"]]


def test_the_configured_order_holds_between_dependent_services_whichever_way() -> None:
    assert waves(["backend", "db"], {"backend": ["db"]}) == [["backend"], ["db"]]


def test_dependencies_outside_the_rollout_are_ignored() -> None:
    assert waves(["web"], {"web": ["external"]}) == [["web"]]


def test_nothing_but_its_dependencies_goes_before_a_migrated_service() -> None:
    order = ["proxy", "db", "backend", "frontend"]
    assert waves(order, EXAMPLE, first="proxy", migrated="backend") == [["proxy"], ["db"], ["backend", "frontend"]]
    deps = {"api": ["db"], "db": ["volume-init"], "volume-init": [], "web": [], "docs": []}
    assert waves(["volume-init", "db", "web", "api", "docs"], deps, migrated="api") == [
        ["volume-init"], ["db"], ["web", "api", "docs"]]
