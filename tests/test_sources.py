"""discover(): recursive, sorted, hidden entries skipped, symlinks followed once, every real file
listed once, ``@list.txt`` paths relative to the list, missing paths named in the error."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import time_limit

from normstat.errors import InputError
from normstat.sources import Item as SourceFile
from normstat.sources import local as sources
from normstat.sources.local import discover


def touch(path: Path, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else path.name)
    return path


def rels(found: list[SourceFile]) -> list[str]:
    return [f.rel for f in found]


def real_paths(found: list[SourceFile]) -> list[str]:
    return [os.path.realpath(f.path) for f in found]


def listing_order(order: Callable[[list[os.DirEntry]], list[os.DirEntry]]):
    real_scandir = os.scandir

    def scandir(path: str) -> list[os.DirEntry]:
        with real_scandir(path) as it:
            return order(list(it))

    return scandir


ORDERS = {
    "sorted": lambda entries: sorted(entries, key=lambda e: e.name),
    "reversed": lambda entries: sorted(entries, key=lambda e: e.name, reverse=True),
}


def discover_in_every_order(monkeypatch: pytest.MonkeyPatch, srcs: list[str]) -> list:
    """discover() under the file system's own listing order and under sorted/reversed orders."""
    results = [discover(srcs)]
    for order in ORDERS.values():
        with monkeypatch.context() as m:
            m.setattr(sources.os, "scandir", listing_order(order))
            results.append(discover(srcs))
    return results


# ---------------------------------------------------------------- walking


def test_recursive_sorted_listing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    names = ["b.png", "a/c.png", "a/b/d.jpg", "z.txt", "a.png", "a-b/e.png", "A/f.png"]
    for name in names:
        touch(root / name)
    found = discover([str(root)])
    assert rels(found) == sorted(names)
    assert all(f.root == str(root) for f in found)
    assert [f.path for f in found] == [os.path.join(root, *n.split("/")) for n in sorted(names)]
    assert discover([str(root) + os.sep]) == found  # trailing separator: same root, same files


def test_order_does_not_depend_on_directory_listing_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    for name in ["m/1.png", "m/2.png", "a/z.png", "q.png", "b/c/d/e.png", "b/c.png"]:
        touch(root / name)
    first, *others = discover_in_every_order(monkeypatch, [str(root)])
    assert all(o == first for o in others)
    assert rels(first) == sorted(rels(first))


def test_order_does_not_depend_on_argument_order(tmp_path: Path) -> None:
    for name in ["x/a.png", "x/c.png", "y/b.png", "y/a.png"]:
        touch(tmp_path / name)
    xy = discover([str(tmp_path / "x"), str(tmp_path / "y")])
    yx = discover([str(tmp_path / "y"), str(tmp_path / "x")])
    assert xy == yx
    assert sorted(real_paths(xy)) == sorted(
        str((tmp_path / n).resolve()) for n in ["x/a.png", "x/c.png", "y/b.png", "y/a.png"]
    )


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ["a.png", "sub/b.png"]:
        touch(root / name)
    for name in [".hidden.png", ".git/objects/x.png", "sub/.DS_Store", "sub/.cache/c.png"]:
        touch(root / name)
    assert rels(discover([str(root)])) == ["a.png", "sub/b.png"]


def test_single_file_source(tmp_path: Path) -> None:
    img = touch(tmp_path / "d" / "one.png")
    assert discover([str(img)]) == [SourceFile(str(tmp_path / "d"), "one.png")]


def test_empty_folder_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert discover([str(tmp_path / "empty")]) == []


# ---------------------------------------------------------------- symlinks


def test_symlink_to_outside_folder_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    touch(root / "a.png")
    touch(tmp_path / "outside" / "e.png")
    touch(tmp_path / "outside" / "deep" / "f.png")
    (root / "ext").symlink_to(tmp_path / "outside", target_is_directory=True)
    found = discover([str(root)])
    assert rels(found) == ["a.png", "ext/deep/f.png", "ext/e.png"]


def test_symlinked_folder_is_followed_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    touch(root / "real" / "a.png")
    touch(root / "real" / "sub" / "b.png")
    (root / "alias").symlink_to("real", target_is_directory=True)
    (root / "zlink").symlink_to("real", target_is_directory=True)
    found = discover([str(root)])
    assert len(found) == 2
    assert sorted(real_paths(found)) == sorted(
        str((root / "real" / n).resolve()) for n in ["a.png", "sub/b.png"]
    )


def test_symlinked_folder_choice_is_deterministic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of the paths to a twice-reachable folder is listed must not depend on the order the
    file system lists directory entries in (it differs between ext4, tmpfs, and copies of one
    tree): the relative paths go into the manifest's file digest and `apply`'s output tree."""
    root = tmp_path / "data"
    touch(root / "real" / "a.png")
    (root / "alias").symlink_to("real", target_is_directory=True)
    (root / "zlink").symlink_to("real", target_is_directory=True)
    results = discover_in_every_order(monkeypatch, [str(root)])
    assert all(len(r) == 1 for r in results)
    assert [rels(r) for r in results] == [rels(results[0])] * len(results)


def test_symlink_loops_terminate_without_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "data"
    touch(root / "a.png")
    touch(root / "dir" / "b.png")
    touch(root / "dir" / "inner" / "c.png")
    (root / "dir" / "loop").symlink_to(root / "dir", target_is_directory=True)  # dir/loop -> dir
    (root / "dir" / "inner" / "up").symlink_to("..", target_is_directory=True)
    (root / "self").symlink_to(".", target_is_directory=True)
    (root / "ouroboros").symlink_to("ouroboros")  # ELOOP on stat
    (root / "dangling.png").symlink_to("missing.png")
    with time_limit(10):
        found = discover([str(root)])
    # The link loop and the dangling link are listed (opening them says why), never dropped.
    assert rels(found) == ["a.png", "dangling.png", "dir/b.png", "dir/inner/c.png", "ouroboros"]


def test_same_file_twice_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    a = touch(root / "a.png")
    touch(root / "b.png")
    (root / "alias.png").symlink_to("a.png")  # a symlink to a file in the same tree
    found = discover([str(root)])
    assert rels(found) == ["a.png", "b.png"]

    # Two SRC arguments reaching the same files: a folder twice, a file and its folder.
    assert discover([str(root), str(root)]) == found
    assert discover([str(a), str(root)]) == found
    assert discover([str(root), str(a), str(root / "alias.png")]) == found
    twice = discover([str(a), str(root / "alias.png")])
    assert len(twice) == 1
    assert real_paths(twice) == [str(a.resolve())]


def test_hard_link_is_the_same_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    touch(root / "a.png")
    os.link(root / "a.png", root / "b.png")
    assert len(discover([str(root)])) == 1


# ---------------------------------------------------------------- @list.txt


def test_list_file_paths_are_relative_to_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    touch(data / "a.png")
    touch(data / "b.png")
    touch(data / "sub" / "c.png")
    touch(data / "sub" / "d.png")
    absolute = touch(tmp_path / "abs" / "e.png")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text(
        f"# training split\n\n../data/a.png\n   \n  ../data/sub  \n#../data/b.png\n{absolute}\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the list's folder, not the working directory
    found = discover([f"@{lists / 'train.txt'}"])
    assert sorted(real_paths(found)) == sorted(
        str(p.resolve()) for p in [data / "a.png", data / "sub/c.png", data / "sub/d.png", absolute]
    )
    assert rels(found) == sorted(rels(found))


def test_list_file_given_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "imgs" / "a.png")
    touch(tmp_path / "imgs" / "b.png")
    (tmp_path / "imgs" / "list.txt").write_text("a.png\r\nb.png\r\n# done\r\n")  # CRLF
    monkeypatch.chdir(tmp_path)
    found = discover(["@imgs/list.txt"])
    assert real_paths(found) == [str((tmp_path / "imgs" / n).resolve()) for n in ["a.png", "b.png"]]


def test_list_entries_merge_with_folders_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    touch(data / "a.png")
    touch(data / "b.png")
    (tmp_path / "l.txt").write_text("data/a.png\ndata\n")
    found = discover([f"@{tmp_path / 'l.txt'}", str(data)])
    assert sorted(real_paths(found)) == sorted(
        str((data / n).resolve()) for n in ["a.png", "b.png"]
    )


# ---------------------------------------------------------------- errors


def test_missing_path_raises_input_error_naming_it(tmp_path: Path) -> None:
    touch(tmp_path / "ok" / "a.png")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(InputError) as info:
        discover([str(tmp_path / "ok"), str(missing)])
    assert info.value.path == str(missing)
    assert str(missing) in str(info.value)
    assert "no such file" in info.value.reason


def test_missing_entry_in_list_names_the_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.txt").write_text("../gone.png\n")
    with pytest.raises(InputError) as info:
        discover([f"@{tmp_path / 'lists' / 'l.txt'}"])
    assert info.value.path == str(tmp_path / "gone.png")


def test_missing_list_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        discover([f"@{tmp_path / 'nope.txt'}"])
    assert info.value.path == str(tmp_path / "nope.txt")
    assert "path list" in info.value.reason


def test_dangling_symlink_given_directly_is_listed_to_be_skipped(tmp_path: Path) -> None:
    """The link is there (its target is not): listed, and skipped with its reason when opened
    (tests/test_inputs_hostile.py); only a path with nothing at all there is an error."""
    link = tmp_path / "dangling.png"
    link.symlink_to(tmp_path / "missing.png")
    assert [f.path for f in discover([str(link)])] == [str(link)]


def test_unlistable_subfolder_is_an_error_not_a_silent_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that cannot be read (permissions) would silently drop its images: refuse."""
    root = tmp_path / "data"
    touch(root / "ok" / "a.png")
    touch(root / "locked" / "b.png")
    real_scandir = os.scandir

    def scandir(path):  # root can read anything, so simulate the permission error
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError, match="Permission denied") as info:
        discover([str(root)])
    assert info.value.path == str(root / "locked")
