from pathlib import Path

from shipline.deployer import ReleaseFiles
from shipline.history import FAILED, SUCCEEDED, History
from shipline.pipeline import kept_releases


def release(history: History, sha: str, status: str) -> int:
    number = history.start(app="shop", sha=sha * 40, short_sha=sha * 7, ref="main", source="cli", actor="ann",
                           images={"backend": f"r/shop/backend:{sha * 7}"}, hosts=["h"])
    history.finish(number, status, {})
    return number


def test_keeps_this_release_and_the_newest_successful_ones(tmp_path: Path) -> None:
    history = History(tmp_path / "h.db")
    for sha, status in (("a", SUCCEEDED), ("b", SUCCEEDED), ("c", FAILED), ("d", SUCCEEDED)):
        release(history, sha, status)
    files = ReleaseFiles(5, b"", {"backend": "r/shop/backend:eeeeeee"}, b"", {})
    kept, images = kept_releases(history, files, keep=3)
    assert kept == [5, 4, 2]
    assert images == {"r/shop/backend:eeeeeee", "r/shop/backend:ddddddd", "r/shop/backend:bbbbbbb"}
