"""What a saved model folder may hold, checked field by field before anything of it is used.

A saved model is a folder upcurve wrote whole (:func:`upcurve.folders.write_folder`): ``models.json`` (the fitted
models) and ``model_card.json`` (what they learned from), listed with their SHA-256 in the folder's manifest. On
load the manifest is verified first, so an edited, truncated or mixed folder is refused; then both files are
validated against the schemas below (unknown keys are errors), and LightGBM's tree text is checked for the
structure its parser trusts without checking (a tree whose recorded size does not match would abort the process).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from upcurve import __version__
from upcurve.errors import UpcurveError

__all__ = ["ModelCard", "SavedModels", "check_trees", "parse_saved", "version_tuple"]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
Kind = Literal["lightgbm", "logistic"]
Target = Literal["expansion", "churn"]
#: The levers of :data:`upcurve.scoring.config.LEVERS` (a test keeps the two lists the same).
Lever = Literal["usage", "seat", "tier", "premium", "cross_sell", "services"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SavedPropensity(_Strict):
    """One fitted :class:`~upcurve.scoring.models.PropensityModel`."""

    kind: Kind
    n_features_in: int = Field(ge=1)
    random_state: int
    trees: str | None = None
    coef: list[Finite] | None = None
    intercept: Finite | None = None
    median: list[Finite] | None = None
    mean: list[Finite] | None = None
    scale: list[Annotated[Finite, Field(gt=0)]] | None = None
    #: The logistic model's categories: ``[feature position, categories seen]`` pairs, each category a column.
    levels: list[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=1)]]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> SavedPropensity:
        if self.kind == "lightgbm":
            if self.trees is None:
                raise ValueError("a lightgbm model needs its trees")
            check_trees(self.trees, n_features=self.n_features_in)
        else:
            if any(at >= self.n_features_in for at, _ in self.levels) or \
                    len({at for at, _ in self.levels}) != len(self.levels):
                raise ValueError(f"category levels must name distinct features below {self.n_features_in}")
            columns = self.n_features_in + sum(n for _, n in self.levels)
            for name in ("coef", "median", "mean", "scale"):
                values = getattr(self, name)
                if values is None or len(values) != columns:
                    raise ValueError(f"a logistic model needs {columns} values of {name}")
            if self.intercept is None:
                raise ValueError("a logistic model needs its intercept")
        return self


class SavedTarget(_Strict):
    """A target's model and its Platt calibration ``(a, b)``; ``a > 0`` keeps the model's order of accounts."""

    model: SavedPropensity
    calibration: tuple[Annotated[Finite, Field(gt=0)], Finite]


class SavedLever(_Strict):
    classes: list[Lever] = Field(min_length=2)
    trees: str

    @model_validator(mode="after")
    def _distinct(self) -> SavedLever:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("lever classes repeat")
        check_trees(self.trees, n_classes=len(self.classes))
        return self


class SavedModels(_Strict):
    """``models.json``."""

    targets: dict[Target, SavedTarget]
    fallback: dict[str, str]
    lever: SavedLever | None = None
    size: str | None = None
    size_ratio: Finite = 0.1

    @model_validator(mode="after")
    def _trees(self) -> SavedModels:
        if self.size is not None:
            check_trees(self.size)
        return self


class HeldOut(_Strict):
    auc: Finite | None = None
    log_loss: Finite | None = None
    brier: Finite | None = None
    precision_at_k: Finite | None = None
    lift_top_decile: Finite | None = None
    base_rate: Finite | None = None
    rows: Finite | None = None


class HistoryTried(_Strict):
    model: Kind | None = None
    window_months: int | None = Field(None, ge=1)
    half_life_months: int | None = Field(None, ge=1)
    auc: Finite | None = None


class HistoryCard(_Strict):
    """Which past months a target's model learned from, and what each choice tried scored."""

    window_months: int | None = Field(None, ge=1)
    half_life_months: int | None = Field(None, ge=1)
    tried: list[HistoryTried] = Field(default_factory=list)


class TargetCard(_Strict):
    training_rows: int = Field(ge=0)
    training_positives: int = Field(ge=0)
    calibration_rows: int = Field(ge=0)
    calibration_positives: int = Field(ge=0)
    calibration: dict[Literal["a", "b"], Finite]
    held_out: HeldOut
    history: HistoryCard | None = None
    model: Kind | None = None


class ModelCard(_Strict):
    """``model_card.json``: what the models learned from, how well they did on months they never saw."""

    features: list[str]
    categories: dict[str, list[str]] = Field(default_factory=dict)
    model: Kind | Literal["auto"]
    horizon_months: int = Field(ge=1, le=12)
    labelled_months: int = Field(ge=0)
    snapshot_rows: int = Field(ge=0)
    rows: int = Field(ge=0)
    targets: dict[Target, TargetCard]
    training_window: list[str] | None = None
    calibration_window: list[str] | None = None
    levers: list[Lever] | None = None
    fallback: dict[str, str] = Field(default_factory=dict)
    trained_at: str
    versions: dict[str, str]
    as_of: str | None = None
    data_dir: str | None = None


def version_tuple(text: object) -> tuple[int, ...] | None:
    """``"0.1.0"`` → ``(0, 1, 0)``; None for anything that is not a release number.

    >>> version_tuple("1.2.10"), version_tuple("dev")
    ((1, 2, 10), None)
    """
    if not isinstance(text, str) or not re.fullmatch(r"\d+(\.\d+)*", text):
        return None
    return tuple(int(p) for p in text.split("."))


_TREE_SIZES = re.compile(rb"^tree_sizes=([0-9 ]*)$", re.M)


def check_trees(text: str, *, n_features: int | None = None, n_classes: int | None = None) -> None:
    """Check LightGBM's model text for what its parser trusts without checking.

    The header's ``tree_sizes`` gives each tree's length in bytes, and LightGBM reads the trees by those lengths:
    a text whose trees do not have exactly those lengths aborts the whole process instead of raising. So each
    tree must start where the sizes say, and the trees must end where ``end of trees`` begins.
    """
    data = text.encode("utf-8")
    if not data.startswith(b"tree\n"):
        raise ValueError("not LightGBM model text (it must start with 'tree')")
    header_end = data.find(b"\nTree=0\n")
    sizes = _TREE_SIZES.search(data, 0, header_end if header_end >= 0 else len(data))
    if header_end < 0 or sizes is None:
        raise ValueError("LightGBM model text without its trees or their sizes")
    header = data[:header_end].decode("utf-8", "replace")
    if n_features is not None and f"\nmax_feature_idx={n_features - 1}\n" not in header:
        raise ValueError(f"the trees were not grown on {n_features} features")
    if n_classes is not None and n_classes > 2 and f"\nnum_class={n_classes}\n" not in header:
        raise ValueError(f"the lever trees do not choose among {n_classes} levers")
    at = header_end + 1
    for i, size in enumerate(int(s) for s in sizes.group(1).split()):
        if not data.startswith(f"Tree={i}\n".encode(), at):
            raise ValueError(f"tree {i} is not where its recorded size puts it (the text was edited)")
        at += size
    if not data.startswith(b"end of trees", at):
        raise ValueError("the trees do not end where their recorded sizes say (the text was edited)")


def parse_saved(folder: str, models: Any, card: Any) -> tuple[SavedModels, ModelCard]:
    """Both files of a saved model, validated against their schemas and against each other.

    Raises
    ------
    UpcurveError
        Naming the folder, the file and every wrong field.
    """
    parsed = []
    for name, data, schema in (("models.json", models, SavedModels), ("model_card.json", card, ModelCard)):
        try:
            parsed.append(schema.model_validate(data))
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                                for e in exc.errors()[:5])
            raise UpcurveError(f"{folder}/{name} is not a model upcurve saved ({details}); train it again "
                               "with `upcurve train`") from None
    saved, model_card = parsed
    assert isinstance(saved, SavedModels) and isinstance(model_card, ModelCard)
    found = version_tuple(model_card.versions.get("upcurve"))
    if found is None or found > (version_tuple(__version__) or ()):
        raise UpcurveError(f"{folder}: saved by upcurve {model_card.versions.get('upcurve')!r}, which this upcurve "
                           f"({__version__}) cannot read; train it again with `upcurve train`")
    # each target's kind is the card's model (unless ``auto``) and the one the card records for that target
    mismatched = [t for t, m in saved.targets.items()
                  if (model_card.model != "auto" and m.model.kind != model_card.model)
                  or (t in model_card.targets and model_card.targets[t].model not in (None, m.model.kind))]
    if set(saved.targets) != set(model_card.targets) or mismatched or saved.fallback != model_card.fallback:
        raise UpcurveError(f"{folder}: models.json and model_card.json describe different models; train it again "
                           "with `upcurve train`")
    return saved, model_card
