"""upcurve deletes only what it provably wrote, writes folders whole, and repairs what a killed write left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from upcurve.folders import MANIFEST, OutputError, check_destination, read_verified, write_folder


def _fill(files: dict[str, str]):
    def fill(stage: Path) -> None:
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)

    return fill


def _dead_pid() -> int:
    """A process id that no process has: a child that has exited and been reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_writes_whole_with_a_manifest_and_replaces_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1", "sub/b.csv": "2"}), kind="results")
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {"a.csv", "sub/b.csv"}
    assert manifest["files"]["a.csv"]["bytes"] == 1
    write_folder(out, _fill({"c.csv": "3"}), kind="results")
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "c.csv"])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left beside it


@pytest.mark.parametrize("extra", ["thesis.txt", "src/main.py", ".hidden"])
def test_refuses_a_folder_holding_anything_upcurve_did_not_write(tmp_path: Path, extra: str) -> None:
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1"}), kind="results")
    (out / extra).parent.mkdir(parents=True, exist_ok=True)
    (out / extra).write_text("a user's work")
    with pytest.raises(OutputError, match="holds"):
        write_folder(out, _fill({"b.csv": "2"}), kind="results")
    assert (out / extra).read_text() == "a user's work"
    assert (out / "a.csv").read_text() == "1"


def test_refuses_a_folder_with_a_file_changed_since_upcurve_wrote_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1"}), kind="results")
    (out / "a.csv").write_text("edited by hand")
    with pytest.raises(OutputError, match="changed since upcurve wrote it"):
        write_folder(out, _fill({"b.csv": "2"}), kind="results")
    assert (out / "a.csv").read_text() == "edited by hand"


def test_a_folder_with_only_a_run_json_is_not_proof(tmp_path: Path) -> None:
    """The probe that deleted a project: any folder holding a file named run.json was replaced whole."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "thesis.txt").write_text("years of work")
    (project / "run.json").write_text("{}")
    with pytest.raises(OutputError, match="did not write"):
        write_folder(project, _fill({"a.csv": "1"}), kind="results")
    assert (project / "thesis.txt").read_text() == "years of work"


def test_a_results_folder_of_upcurve_0_1_is_replaced_when_it_holds_exactly_its_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mrr.parquet").write_bytes(b"x")
    legacy = {"upcurve": "0.1.0", "tables": {"mrr": {"rows": 1, "file": "mrr.parquet"}}}
    (out / "run.json").write_text(json.dumps(legacy))
    write_folder(out, _fill({"a.csv": "1"}), kind="results")
    assert (out / "a.csv").exists() and not (out / "mrr.parquet").exists()
    out2 = tmp_path / "out2"
    out2.mkdir()
    (out2 / "run.json").write_text(json.dumps({"upcurve": "0.1.0", "tables": {}}))
    (out2 / "notes.md").write_text("mine")
    with pytest.raises(OutputError):
        write_folder(out2, _fill({"a.csv": "1"}), kind="results")


@pytest.mark.parametrize("relation", ["same", "inside", "holds"])
def test_never_writes_into_its_input(tmp_path: Path, relation: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text("account_id\na\n")
    out = {"same": data, "inside": data / "results", "holds": tmp_path}[relation]
    with pytest.raises(OutputError, match="never writes into its input"):
        check_destination(out, inputs=[data])
    assert (data / "accounts.csv").read_text() == "account_id\na\n"


def test_a_failing_fill_leaves_the_earlier_folder_and_nothing_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1"}), kind="results")

    def broken(stage: Path) -> None:
        (stage / "half.csv").write_text("half")
        raise RuntimeError("the computation failed")

    with pytest.raises(RuntimeError):
        write_folder(out, broken, kind="results")
    read_verified(out, kind="results")
    assert (out / "a.csv").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_interrupted_two_rename_swap_is_repaired_by_the_next_write(tmp_path: Path) -> None:
    """Killed between moving the old folder aside and moving the new one in: the old one is put back."""
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "previous"}), kind="results")
    aside = tmp_path / f".out.upcurve-old-{_dead_pid()}-abcd"
    out.rename(aside)

    def broken(stage: Path) -> None:
        raise RuntimeError("fails after the repair")

    with pytest.raises(RuntimeError):
        write_folder(out, broken, kind="results")
    assert (out / "a.csv").read_text() == "previous"
    read_verified(out, kind="results")
    assert not aside.exists()


def test_staging_left_by_a_killed_process_is_removed_but_a_live_ones_is_not(tmp_path: Path) -> None:
    dead = tmp_path / f".out.upcurve-new-{_dead_pid()}-abcd"
    dead.mkdir()
    (dead / ".upcurve-staging").write_text("{}")
    (dead / "half.parquet").write_bytes(b"half")
    live = tmp_path / f".out.upcurve-new-{os.getppid()}-abcd"
    live.mkdir()
    (live / ".upcurve-staging").write_text("{}")
    strange = tmp_path / f".out.upcurve-new-{_dead_pid()}-ffff"
    strange.mkdir()
    (strange / "someone_elses.txt").write_text("not upcurve's")
    unmarked = tmp_path / f".out.upcurve-new-{_dead_pid()}-0000"
    unmarked.mkdir()  # killed between making its staging folder and marking it: empty
    write_folder(tmp_path / "out", _fill({"a.csv": "1"}), kind="results")
    assert not dead.exists()
    assert live.exists()  # its writer still runs
    assert (strange / "someone_elses.txt").exists()  # not provably upcurve's
    assert not unmarked.exists()  # empty: removing it deletes nothing


def test_the_two_rename_fallback_gives_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import upcurve.folders as folders

    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1"}), kind="results")
    write_folder(out, _fill({"b.csv": "2"}), kind="results")
    assert (out / "b.csv").read_text() == "2" and not (out / "a.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_destination_that_is_a_file_or_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_destination(tmp_path / "f")
    with pytest.raises(OutputError, match="is a file"):
        check_destination(tmp_path / "f" / "out")


def test_an_unwritable_parent_is_refused_before_anything_is_computed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # tests run as root, which writes anywhere; the check itself asks the operating system (os.access)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_destination(tmp_path / "out")


def test_an_os_error_while_writing_is_a_clear_error_and_the_folder_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1"}), kind="results")

    def full_disk(stage: Path) -> None:
        raise OSError(28, "No space left on device", str(stage / "mrr.parquet"))

    with pytest.raises(OutputError, match="No space left on device"):
        write_folder(out, full_disk, kind="results")
    assert (out / "a.csv").read_text() == "1"


def test_verify_names_what_was_changed(tmp_path: Path) -> None:
    out = tmp_path / "m"
    write_folder(out, _fill({"models.json": "{}", "model_card.json": "{}"}), kind="model")
    (out / "models.json").write_text('{"x": 1}')
    (out / "extra.json").write_text("{}")
    with pytest.raises(OutputError, match=r"extra.json was added.*models.json was changed"):
        read_verified(out, kind="model", what="saved model")
    with pytest.raises(OutputError, match="not a saved model"):
        read_verified(tmp_path, kind="model", what="saved model")


def test_a_previous_folder_whose_removal_was_killed_is_removed_by_the_next_write(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    """After a swap, the staging name holds the previous result, removed manifest last: killed half-way, what is
    left still proves it is upcurve's (its manifest), and the next write finishes removing it."""
    import shutil

    import upcurve.folders as folders

    out = tmp_path / "out"
    write_folder(out, _fill({"a.csv": "1", "b.csv": "2"}), kind="results")
    left = tmp_path / f".out.upcurve-new-{_dead_pid()}-beef"
    shutil.copytree(out, left)
    (left / "a.csv").unlink()  # the removal got this far
    assert folders._ours(left)
    write_folder(out, _fill({"c.csv": "3"}), kind="results")
    assert not left.exists()
    # the order that makes it so: every other entry goes before the manifest
    order: list[str] = []
    real_unlink = Path.unlink

    def noting(self: Path, missing_ok: bool = False) -> None:
        order.append(self.name)
        real_unlink(self, missing_ok=missing_ok)

    again = tmp_path / "again"
    shutil.copytree(out, again)
    monkeypatch.setattr(Path, "unlink", noting)
    folders._remove_ours(again)
    monkeypatch.undo()
    assert order[-1] == MANIFEST and not again.exists()
