"""A saved model is used only when it is exactly what upcurve wrote; anything else is refused with a clear error,
and never aborts the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from tests.scoring.test_scorer import _snapshot_frame
from upcurve.errors import UpcurveError
from upcurve.folders import MANIFEST, file_digest
from upcurve.scoring import LEVERS, AccountScorer, ScoringConfig
from upcurve.scoring.saved import Lever

#: LightGBM for both outcomes: the cases below edit its trees.
CONFIG = ScoringConfig(min_training_months=4, min_positives=5, model="lightgbm")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "model"
    AccountScorer(CONFIG).fit(_snapshot_frame(120, 14, ("seat", "usage", "tier"))).save(folder)
    return folder


def _copy(saved: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for path in saved.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _reseal(folder: Path) -> None:
    """What a deliberate forger does: recompute the manifest's checksums after an edit."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {name: file_digest(folder / name) for name in manifest["files"]}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _edit(folder: Path, name: str, change: typing.Callable[[dict], None], *, reseal: bool = True) -> None:
    data = json.loads((folder / name).read_text())
    change(data)
    (folder / name).write_text(json.dumps(data))
    if reseal:
        _reseal(folder)


def test_the_lever_lists_agree() -> None:
    assert set(typing.get_args(Lever)) == set(LEVERS)


def test_a_saved_model_scores_as_the_one_that_was_saved(saved: Path) -> None:
    frame = _snapshot_frame(120, 14, ("seat", "usage", "tier")).slice(0, 40)
    fitted = AccountScorer(CONFIG).fit(_snapshot_frame(120, 14, ("seat", "usage", "tier")))
    assert AccountScorer.load(saved, CONFIG).score(frame) == fitted.score(frame)


def _set_calibration(data: dict) -> None:
    data["targets"]["churn"]["calibration"][0] = -1.0  # inverts the churn ranking


def _newer(data: dict) -> None:
    data["versions"]["upcurve"] = "99.0.0"


def _unknown(data: dict) -> None:
    data["versions"]["upcurve"] = "dev"


def _extra(data: dict) -> None:
    data["note"] = "hand-edited"


def _mixed(data: dict) -> None:
    """The card of a save that learned the other kind for every target."""
    other = {"lightgbm": "logistic", "logistic": "lightgbm"}
    for target in data["targets"].values():
        target["model"] = other[target["model"]]
    data["model"] = next(iter(data["targets"].values()))["model"]


def _nan(data: dict) -> None:
    data["size_ratio"] = "NaN"


CASES = {
    "calibration inverted": ("models.json", _set_calibration, "calibration"),
    "saved by a newer upcurve": ("model_card.json", _newer, "cannot read"),
    "saved by an unknown upcurve": ("model_card.json", _unknown, "cannot read"),
    "an unknown key in the card": ("model_card.json", _extra, "note"),
    "a card from another save": ("model_card.json", _mixed, "describe different models"),
    "a number that is not finite": ("models.json", _nan, "size_ratio"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_edited_model_is_refused_even_with_its_checksums_recomputed(saved: Path, tmp_path: Path,
                                                                      case: str) -> None:
    name, change, message = CASES[case]
    folder = _copy(saved, tmp_path)
    _edit(folder, name, change)
    with pytest.raises(UpcurveError, match=message):
        AccountScorer.load(folder, CONFIG)


def test_an_edit_without_new_checksums_is_refused_by_the_manifest(saved: Path, tmp_path: Path) -> None:
    folder = _copy(saved, tmp_path)
    _edit(folder, "models.json", _set_calibration, reseal=False)
    with pytest.raises(UpcurveError, match=r"models\.json was changed"):
        AccountScorer.load(folder, CONFIG)


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing", "added", "not json", "no manifest"])
def test_a_damaged_folder_is_refused(saved: Path, tmp_path: Path, damage: str) -> None:
    folder = _copy(saved, tmp_path)
    target = folder / "models.json"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:500])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "missing":
        target.unlink()
    elif damage == "added":
        (folder / "other.json").write_text("{}")
    elif damage == "not json":
        target.write_bytes(b"\xff\xfe not json")
        _reseal(folder)
    else:
        (folder / MANIFEST).unlink()
    with pytest.raises(UpcurveError):
        AccountScorer.load(folder, CONFIG)


def _tree_edits() -> dict[str, typing.Callable[[str], str]]:
    return {
        # LightGBM reads each tree by the byte length its header records: a longer tree aborts the process
        "a tree made longer": lambda t: t.replace("\nTree=1\n", "\nTree=1\n\n", 1),
        "a tree made shorter": lambda t: t.replace("split_gain=", "split_gain", 1),
        "the sizes edited": lambda t: t.replace("tree_sizes=", "tree_sizes=1 ", 1),
        "not trees at all": lambda t: "hello",
    }


@pytest.mark.parametrize("edit", list(_tree_edits()))
def test_edited_trees_are_refused_and_never_abort_the_process(saved: Path, tmp_path: Path, edit: str) -> None:
    folder = _copy(saved, tmp_path)
    change = _tree_edits()[edit]
    _edit(folder, "models.json", lambda d: d["targets"]["expansion"]["model"].update(
        trees=change(d["targets"]["expansion"]["model"]["trees"])))
    # in a child process: were the check to miss, LightGBM would abort the interpreter, not raise
    code = ("import sys\nfrom upcurve.errors import UpcurveError\nfrom upcurve.scoring import AccountScorer\n"
            f"try:\n    AccountScorer.load({str(folder)!r})\nexcept UpcurveError as exc:\n"
            "    print(exc)\n    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "models.json is not a model upcurve saved" in done.stdout


def test_concurrent_saves_never_mix_a_card_with_the_other_models(tmp_path: Path) -> None:
    """Two processes save a LightGBM and a logistic scorer into one folder again and again; every load in
    between sees one save whole."""
    folder = tmp_path / "model"
    script = tmp_path / "saver.py"
    script.write_text(
        "import sys\nfrom tests.scoring.test_scorer import _snapshot_frame\n"
        "from upcurve.scoring import AccountScorer, ScoringConfig\n"
        "cfg = ScoringConfig(min_training_months=4, min_positives=5, model=sys.argv[2])\n"
        "scorer = AccountScorer(cfg).fit(_snapshot_frame(60, 14, ('seat', 'usage')))\n"
        "for _ in range(15):\n    scorer.save(sys.argv[1])\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    savers = [subprocess.Popen([sys.executable, str(script), str(folder), kind], cwd=root, env=env,
                               stderr=subprocess.PIPE, text=True) for kind in ("lightgbm", "logistic")]
    loads = 0
    while any(p.poll() is None for p in savers):
        if folder.exists():
            scorer = AccountScorer.load(folder)
            kinds = {m.kind for m in scorer.models_.values()}
            assert kinds == {scorer.card_["model"]}
            loads += 1
    for p in savers:
        assert p.wait() == 0, p.stderr.read() if p.stderr else ""
    assert loads > 0
    AccountScorer.load(folder)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_save_killed_at_any_moment_leaves_a_whole_model(saved: Path, tmp_path: Path) -> None:
    """kill -9 while a process saves again and again: the folder always loads as one whole save, and the next
    save removes what the killed one left."""
    import random
    import signal
    import time

    folder = tmp_path / "model"
    AccountScorer.load(saved, CONFIG).save(folder)
    script = tmp_path / "saver.py"
    script.write_text(
        "import sys\nfrom upcurve.scoring import AccountScorer\n"
        "scorer = AccountScorer.load(sys.argv[2])\nprint('ready', flush=True)\n"
        "while True:\n    scorer.save(sys.argv[1])\n")
    rng = random.Random()
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(folder), str(saved)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        AccountScorer.load(folder, CONFIG)
    AccountScorer.load(saved, CONFIG).save(folder)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
