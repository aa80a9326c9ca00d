import json
import os

import pytest

from originality import runs
from originality.errors import OriginalityError


def test_a_run_folder_is_created_resumed_or_refused_naming_what_differs(tmp_path):
    out = tmp_path / "run"
    settings = {"config": {"steps": 300, "lr": 0.005}, "model": "a"}
    assert runs.open_run(out, settings) is False
    assert json.loads((out / runs.SETTINGS).read_text()) == settings
    assert runs.open_run(out, settings) is True
    other = {"config": {"steps": 600, "lr": 0.005}, "model": "b"}
    with pytest.raises(OriginalityError, match=r"with other settings \(config\.steps, model\)"):
        runs.open_run(out, other)
    assert json.loads((out / runs.SETTINGS).read_text()) == settings  # nothing rewritten


def test_a_folder_of_something_else_is_refused_unless_adopted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OriginalityError, match="exists and is not a batch to resume"):
        runs.open_run(tmp_path, {"a": 1}, what="a batch")
    assert not (tmp_path / runs.SETTINGS).exists()
    assert runs.open_run(tmp_path, {"a": 1}, adopt=lambda out: (out / "notes.txt").is_file()) is True
    (tmp_path / ".lock").write_text("1")  # hidden entries are the run's own
    assert runs.has_content(tmp_path) and not runs.has_content(tmp_path / "absent")


def test_restart_empties_our_own_folder_and_update_keeps_it(tmp_path):
    runs.open_run(tmp_path / "d", {"m": 1}, marker="demo.json", on_other="restart")
    (tmp_path / "d" / "scores").mkdir()
    assert runs.open_run(tmp_path / "d", {"m": 2}, marker="demo.json", on_other="restart") is False
    assert not (tmp_path / "d" / "scores").exists()
    runs.open_run(tmp_path / "g", {"m": 1}, on_other="update")
    (tmp_path / "g" / "cache").mkdir()
    assert runs.open_run(tmp_path / "g", {"m": 2}, on_other="update") is True
    assert (tmp_path / "g" / "cache").is_dir() and runs.read_json(tmp_path / "g" / runs.SETTINGS) == {"m": 2}


def test_a_check_without_write_leaves_no_trace(tmp_path):
    assert runs.open_run(tmp_path / "new", {"a": 1}, write=False) is False
    assert not (tmp_path / "new").exists()


def test_compare_reads_saved_settings_through_the_same_lens(tmp_path):
    runs.write_json(tmp_path / runs.SETTINGS, {"fingerprint": "x", "dataset": "old/path"})
    same = {"fingerprint": "x", "dataset": "new/path"}
    assert runs.open_run(tmp_path, same, compare=lambda s: {"fingerprint": s["fingerprint"]}) is True
    with pytest.raises(OriginalityError, match="damaged"):
        (tmp_path / runs.SETTINGS).write_text("{not json")
        runs.open_run(tmp_path, same)


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "summary.json"
    runs.write_json(path, {"v": 1})
    with pytest.raises(RuntimeError), runs.atomic_path(path) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("killed mid-write")
    assert runs.read_json(path) == {"v": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_atomic_folder_replaces_whole_and_clears_a_stale_temp(tmp_path):
    final = tmp_path / "image"
    stale = tmp_path / ".tmp-image"
    stale.mkdir()
    (stale / "half.png").write_text("x")
    with runs.atomic_folder(final) as tmp:
        assert not (tmp / "half.png").exists()
        (tmp / "result.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image"] and (final / "result.json").is_file()
    with pytest.raises(KeyboardInterrupt), runs.atomic_folder(final) as tmp:
        raise KeyboardInterrupt
    assert (final / "result.json").is_file() and not stale.exists()


def test_a_torn_last_line_is_cut_before_the_next_record(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    runs.append_jsonl(path, {"image": "a.png"})
    with path.open("a") as f:
        f.write('{"image": "b.p')  # killed mid-write
    runs.append_jsonl(path, {"image": "c.png"})
    assert [r["image"] for r in runs.read_jsonl(path)] == ["a.png", "c.png"]
    assert path.read_text().count("\n") == 2 and "torn last line" in capsys.readouterr().err


def test_part_files_merge_once_per_key(tmp_path):
    two = runs.Processes(1, 2)
    assert runs.part_file("results.jsonl", runs.Processes()) == "results.jsonl"
    assert runs.part_file("results.jsonl", two) == "results.rank1.jsonl"
    runs.append_jsonl(tmp_path / "results.jsonl", {"image": "a"})
    runs.append_jsonl(tmp_path / "results.rank1.jsonl", {"image": "b"})
    runs.append_jsonl(tmp_path / "results.rank0.jsonl", {"image": "a"})
    assert list(runs.read_records(tmp_path, "results.jsonl", "image")) == ["a", "b"]
    runs.merge_parts(tmp_path, "results.jsonl", "image")
    assert [r["image"] for r in runs.read_jsonl(tmp_path / "results.jsonl")] == ["a", "b"]
    assert runs.part_files(tmp_path, "results.jsonl") == []


def test_the_lock_refuses_a_live_owner_and_takes_over_a_dead_ones(tmp_path):
    (tmp_path / runs.LOCK).write_text(str(os.getppid()))
    with pytest.raises(OriginalityError, match="another run"), runs.lock(tmp_path):
        pass
    (tmp_path / runs.LOCK).write_text("999999999")
    with runs.lock(tmp_path):
        assert (tmp_path / runs.LOCK).read_text() == str(os.getpid())
    assert not (tmp_path / runs.LOCK).exists()


def test_a_later_record_replaces_an_error_and_nothing_else(tmp_path):
    runs.append_jsonl(tmp_path / "results.jsonl", {"image": "a", "status": "error", "reason": "truncated"})
    runs.append_jsonl(tmp_path / "results.jsonl", {"image": "b", "status": "ok", "n": 1})
    runs.append_jsonl(tmp_path / "results.rank1.jsonl", {"image": "a", "status": "ok"})
    runs.append_jsonl(tmp_path / "results.rank1.jsonl", {"image": "b", "status": "ok", "n": 2})
    records = runs.read_records(tmp_path, "results.jsonl", "image")
    assert records["a"]["status"] == "ok" and records["b"]["n"] == 1  # a settled key keeps its first record
    runs.merge_parts(tmp_path, "results.jsonl", lambda r: r["image"])
    merged = runs.read_jsonl(tmp_path / "results.jsonl")
    assert [(r["image"], r["status"]) for r in merged] == [("a", "error"), ("b", "ok"), ("a", "ok")]
    assert runs.read_records(tmp_path, "results.jsonl", "image")["a"]["status"] == "ok"
