"""Verification and parsing against recorded real payloads and GitHub's documented signature vector."""

import hashlib
import hmac
from pathlib import Path

import pytest

from shipline.server import webhooks
from shipline.server.webhooks import Rejected

DATA = Path(__file__).parents[2] / "data" / "webhooks"
DOC_SECRET = "It's a Secret to Everybody"
# Computed over the stored files' exact bytes with DOC_SECRET (VECTORS.md in the collection).
RECORDED_SIGNATURES = {
    "github-push-branch.json": "f34850706d3e5e5a04a0ce1fc8cdec591b62e15f33636253edad1b9d3eb78385",
    "gitea-push.json": "597183de06d034700a15e376b097dea828d62b8256a1ed23a76196d9770675be",
    "gitea-push-goscm.json": "dd64b8d07f0322104f25746bc31e446db0c13900fa9de99921dccea027751d29",
}


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_githubs_documented_vector() -> None:
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    webhooks.verify("github", {"x-hub-signature-256": sig}, b"Hello, World!", DOC_SECRET)
    webhooks.verify("gitea", {"x-gitea-signature": sig.removeprefix("sha256=")}, b"Hello, World!", DOC_SECRET)


@pytest.mark.parametrize("name", sorted(RECORDED_SIGNATURES))
def test_recorded_payload_signatures_verify_over_raw_bytes(name: str) -> None:
    raw, sig = body(name), RECORDED_SIGNATURES[name]
    header = {"x-hub-signature-256": f"sha256={sig}"} if name.startswith("github") else {"x-gitea-signature": sig}
    webhooks.verify("github" if name.startswith("github") else "gitea", header, raw, DOC_SECRET)


def test_reserialised_json_does_not_verify() -> None:
    import json

    raw = body("github-push-branch.json")
    again = json.dumps(json.loads(raw)).encode()
    with pytest.raises(Rejected) as exc:
        webhooks.verify("github", {"x-hub-signature-256": "sha256=" + RECORDED_SIGNATURES["github-push-branch.json"]},
                        again, DOC_SECRET)
    assert exc.value.status == 401


@pytest.mark.parametrize(("forge", "headers"), [
    ("github", {}),
    ("github", {"x-hub-signature-256": "sha256=" + "0" * 64}),
    ("github", {"x-hub-signature-256": RECORDED_SIGNATURES["github-push-branch.json"]}),  # no sha256= prefix
    ("gitea", {}),
    ("gitea", {"x-gitea-signature": "zz"}),
    ("gitlab", {}),
    ("gitlab", {"x-gitlab-token": "It's a secret to everybody"}),  # case differs
])
def test_unsigned_or_wrongly_signed_is_401(forge: str, headers: dict[str, str]) -> None:
    with pytest.raises(Rejected) as exc:
        webhooks.verify(forge, headers, body("github-push-branch.json"), DOC_SECRET)
    assert exc.value.status == 401


def test_gitlab_token_and_forgejo_header() -> None:
    webhooks.verify("gitlab", {"x-gitlab-token": DOC_SECRET}, b"{}", DOC_SECRET)
    mac = hmac.new(DOC_SECRET.encode(), b"{}", hashlib.sha256).hexdigest()
    webhooks.verify("gitea", {"x-forgejo-signature": mac}, b"{}", DOC_SECRET)


def test_gitea_in_body_secret_is_never_used_for_auth() -> None:
    raw = body("gitea-push.json")
    assert b'"secret"' in raw
    with pytest.raises(Rejected):
        webhooks.verify("gitea", {}, raw, "3gEsCfjlV2ugRwgpU#w1*WaW*wa4NXgGmpCfkbG3")


@pytest.mark.parametrize(("forge", "name", "ref", "sha", "actor"), [
    ("github", "github-push-branch.json", "refs/heads/master", "199eddf46df50de8d02e99bf1c5fdb4101338224", "Codertocat"),
    ("github", "github-push-new-branch.json", "refs/heads/master", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "Codertocat"),
    ("github", "github-push-no-username-committer.json", "refs/heads/master", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "Codertocat"),
    ("github", "github-push-tag-created.json", "refs/tags/v0.0.1", "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", "bradrydzewski"),
    ("github", "github-push-tag-deleted.json", "refs/tags/simple-tag", None, "Codertocat"),
    ("github", "github-push-tag-deleted-org.json", "refs/tags/simple-tag", None, "Codertocat"),
    ("github", "github-push-branch-deleted.json", "refs/heads/feature-branch", None, "bradrydzewski"),
    ("gitea", "gitea-push.json", "refs/heads/develop", "bffeb74224043ba2feb48d137756c8a9331c449a", "gitea"),
    ("gitea", "gitea-push-goscm.json", "refs/heads/master", "4522cbcefc20728a5b72b3a86af35e608622c514", "unknwon"),
    ("gitlab", "gitlab-push.json", "refs/heads/master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "jsmith"),
    ("gitlab", "gitlab-push-goscm.json", "refs/heads/master", "2adc9465c4edfc33834e173fe89436a7cb899a1d", "sytses"),
    ("gitlab", "gitlab-tag-push.json", "refs/tags/v1.0.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "John Smith"),
])
def test_parse_recorded_pushes(forge: str, name: str, ref: str, sha: str | None, actor: str) -> None:
    push = webhooks.parse_push(forge, body(name))
    assert (push.ref, push.sha, push.actor) == (ref, sha, actor)


def test_only_the_deploy_branch_deploys() -> None:
    parse = webhooks.parse_push
    assert webhooks.decide(parse("github", body("github-push-branch.json")), "master") is None
    assert "not the deploy branch" in (webhooks.decide(parse("gitea", body("gitea-push.json")), "master") or "")
    assert "tag" in (webhooks.decide(parse("github", body("github-push-tag-created.json")), "master") or "")
    assert "tag" in (webhooks.decide(parse("gitlab", body("gitlab-tag-push.json")), "master") or "")
    assert "deleted" in (webhooks.decide(parse("github", body("github-push-branch-deleted.json")), "feature-branch") or "")
    # A branch whose name only starts like the deploy branch is another branch.
    other = webhooks.Push(ref="refs/heads/master-old", sha="a" * 40, actor="x", repository="r")
    assert webhooks.decide(other, "master") is not None


def test_github_form_encoded_delivery() -> None:
    from urllib.parse import quote

    raw = b"payload=" + quote(body("github-push-branch.json").decode()).encode()
    assert webhooks.parse_push("github", raw).sha == "199eddf46df50de8d02e99bf1c5fdb4101338224"


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"ref": "master", "after": "x"}',
                                 b'{"ref": "refs/heads/main", "after": "xyz"}', b'{"after": "' + b"a" * 40 + b'"}'])
def test_malformed_payloads_are_400(raw: bytes) -> None:
    with pytest.raises(Rejected) as exc:
        webhooks.parse_push("github", raw)
    assert exc.value.status == 400


def test_delivery_ids_and_events() -> None:
    assert webhooks.delivery_id("github", {"x-github-delivery": "g"}) == "g"
    assert webhooks.delivery_id("gitea", {"x-gitea-delivery": "t", "x-github-delivery": "g"}) == "t"
    assert webhooks.delivery_id("gitlab", {"idempotency-key": "k", "x-gitlab-event-uuid": "u"}) == "k"
    assert webhooks.delivery_id("gitlab", {"x-gitlab-event-uuid": "u"}) == "u"
    assert webhooks.is_push("gitlab", webhooks.event("gitlab", {"x-gitlab-event": "Push Hook"}))
    assert not webhooks.is_push("github", webhooks.event("github", {"x-github-event": "ping"}))
