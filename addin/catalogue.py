"""The plan model: indicators, groups and the catalogue that holds them.

The catalogue is data (``schemas/catalogue.csv``, editable by a coordinator; a project may keep
its own copy as ``catalogue.csv`` in the project folder). This module turns it into typed
objects the engine can use; it knows nothing of Excel.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
from plan_tracker.periods import PLAN_END
from plan_tracker.schemas.catalogue import (
    CATALOGUE_CSV,
    COLUMNS,
    COMPUTED_RULES,
    GROUPS_CSV,
    REQUIRED_COLUMNS,
    format_milestones,
    load_groups,
    parse_derived,
    parse_milestones,
    read_catalogue_csv,
    validate_catalogue,
)

DEFAULT_TOLERANCE = 0.05
TASK_STATES = ("未启动", "推进中", "已完成")
#: Columns of ``plan-tracker indicators --format csv``, in this order (issue #2): the
#: catalogue file's required columns.
EXPORT_COLUMNS = list(REQUIRED_COLUMNS)


@dataclass(frozen=True)
class Derivation:
    """How a derived indicator is computed from others."""

    kind: str  # "share" or "count_at_least"
    numerator: tuple[str, ...] = ()
    denominator: tuple[str, ...] = ()
    threshold: float | None = None
    items: tuple[str, ...] = ()

    @property
    def components(self) -> tuple[str, ...]:
        return self.items if self.kind == "count_at_least" else self.numerator + self.denominator


@dataclass(frozen=True)
class Indicator:
    id: str
    name_zh: str
    name_en: str
    group: str
    unit: str
    measure: str  # flow | stock | ratio ("" for a task)
    rule: str
    milestones: dict[int, float] = field(default_factory=dict)
    tolerance: float | None = None
    owner: str = ""
    source: str = ""
    derived: Derivation | None = None
    plan_text: str = ""
    definition_zh: str = ""

    @property
    def is_money(self) -> bool:
        return self.unit == "亿元"

    @property
    def is_task(self) -> bool:
        return self.rule == "task"

    @property
    def is_growth(self) -> bool:
        return self.rule in COMPUTED_RULES

    @property
    def is_computed_only(self) -> bool:
        """Takes no observations: growth rules and the cluster counts (plan-semantics §2)."""
        return self.is_growth or (self.derived is not None and self.derived.kind == "count_at_least")

    @property
    def accepts_observations(self) -> bool:
        return not self.is_computed_only

    @property
    def effective_tolerance(self) -> float | None:
        if self.rule != "about":
            return None
        return DEFAULT_TOLERANCE if self.tolerance is None else self.tolerance

    @property
    def final_year(self) -> int | None:
        return max(self.milestones) if self.milestones else None

    @property
    def final_target(self) -> float | None:
        return self.milestones[self.final_year] if self.milestones else None

    @property
    def horizon_year(self) -> int:
        """The year an outlook projects to: the last milestone, else the plan's end."""
        return self.final_year or PLAN_END

    def export_row(self) -> dict[str, object]:
        tol = self.effective_tolerance
        return {
            "id": self.id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "group": self.group,
            "unit": self.unit,
            "measure": self.measure,
            "rule": self.rule,
            "milestones": format_milestones(self.milestones),
            "tolerance": "" if tol is None else tol,
            "owner": self.owner,
            "source": self.source,
        }


@dataclass(frozen=True)
class Group:
    id: str
    name_zh: str
    name_en: str
    kind: str  # overall | cluster | project


class UnknownIndicator(KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"未知指标 / unknown indicator: {self.key!r}（用 plan-tracker indicators 查看编号 / see plan-tracker indicators）"


class Catalogue:
    """All indicators of the plan, in catalogue order, with lookups by id and Chinese name."""

    def __init__(self, indicators: list[Indicator], groups: list[Group], csv_text: str) -> None:
        self.indicators = indicators
        self.groups = groups
        self.csv_text = csv_text
        self._by_id = {ind.id: ind for ind in indicators}
        self._by_name = {ind.name_zh: ind for ind in indicators}
        self._groups = {g.id: g for g in groups}

    def __iter__(self):
        return iter(self.indicators)

    def __len__(self) -> int:
        return len(self.indicators)

    def __contains__(self, key: object) -> bool:
        return key in self._by_id

    def get(self, indicator_id: str) -> Indicator:
        try:
            return self._by_id[indicator_id]
        except KeyError:
            raise UnknownIndicator(indicator_id) from None

    def resolve(self, key: str) -> Indicator:
        """An indicator by id (case-insensitive) or by its exact Chinese name."""
        text = str(key).strip()
        found = self._by_id.get(text) or self._by_id.get(text.upper()) or self._by_name.get(text)
        if found is None:
            raise UnknownIndicator(text)
        return found

    def group(self, group_id: str) -> Group:
        return self._groups[group_id]

    def in_group(self, group_id: str) -> list[Indicator]:
        return [ind for ind in self.indicators if ind.group == group_id]

    @cached_property
    def version_hash(self) -> str:
        return hashlib.sha256(self.csv_text.encode("utf-8")).hexdigest()[:12]

    @cached_property
    def dependants(self) -> dict[str, list[str]]:
        """Indicator id → ids computed from it (growth rules, shares, counts)."""
        out: dict[str, list[str]] = {}
        for ind in self.indicators:
            parents = list(ind.derived.components) if ind.derived else []
            if ind.source:
                parents.append(ind.source)
            for parent in parents:
                out.setdefault(parent, []).append(ind.id)
        return out

    def export_frame(self) -> pd.DataFrame:
        return pd.DataFrame([ind.export_row() for ind in self.indicators], columns=EXPORT_COLUMNS)

    def departments(self) -> list[str]:
        seen: dict[str, None] = {}
        for ind in self.indicators:
            if ind.owner and ind.accepts_observations:
                seen.setdefault(ind.owner, None)
        return list(seen)


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def catalogue_from_frame(frame: pd.DataFrame, groups_frame: pd.DataFrame, csv_text: str, file: str | None = None) -> Catalogue:
    frame = validate_catalogue(frame, groups_frame, file)
    indicators = []
    for row in frame.to_dict("records"):
        derived = parse_derived(row.get("derived"))
        derivation = None
        if derived:
            kind, parts = derived
            derivation = Derivation(
                kind=kind,
                numerator=tuple(parts.get("numerator", ())),
                denominator=tuple(parts.get("denominator", ())),
                threshold=parts.get("threshold"),
                items=tuple(parts.get("items", ())),
            )
        tolerance = row.get("tolerance")
        indicators.append(
            Indicator(
                id=row["id"],
                name_zh=row["name_zh"],
                name_en=row["name_en"],
                group=row["group"],
                unit=_text(row.get("unit")),
                measure=_text(row.get("measure")),
                rule=row["rule"],
                milestones=parse_milestones(row.get("milestones")),
                tolerance=None if tolerance is None or pd.isna(tolerance) else float(tolerance),
                owner=_text(row.get("owner")),
                source=_text(row.get("source")),
                derived=derivation,
                plan_text=_text(row.get("plan_text")),
                definition_zh=_text(row.get("definition_zh")),
            )
        )
    groups = [Group(r["group"], r["name_zh"], r["name_en"], r["kind"]) for r in groups_frame.to_dict("records")]
    return Catalogue(indicators, groups, csv_text)


def load_catalogue(path: Path | str | None = None, groups_path: Path | str | None = None) -> Catalogue:
    """Load and validate a catalogue CSV (default: the one shipped with the package)."""
    path = Path(path) if path else CATALOGUE_CSV
    csv_text = path.read_text(encoding="utf-8-sig")
    frame = read_catalogue_csv(io.StringIO(csv_text))
    groups = load_groups(groups_path or GROUPS_CSV)
    return catalogue_from_frame(frame, groups, csv_text, file=str(path))


def catalogue_from_text(csv_text: str) -> Catalogue:
    frame = read_catalogue_csv(io.StringIO(csv_text))
    return catalogue_from_frame(frame, load_groups(), csv_text)


__all__ = [
    "COLUMNS",
    "Catalogue",
    "Derivation",
    "EXPORT_COLUMNS",
    "Group",
    "Indicator",
    "TASK_STATES",
    "UnknownIndicator",
    "load_catalogue",
    "catalogue_from_text",
]
