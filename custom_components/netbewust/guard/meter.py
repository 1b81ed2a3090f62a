"""The P1 meter's entities and how their states become a `MeterReading`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..const import (
    CONF_CURRENT,
    CONF_METER_MODE,
    CONF_POWER_EXPORT,
    CONF_POWER_EXPORT_TOTAL,
    CONF_POWER_IMPORT,
    CONF_POWER_IMPORT_TOTAL,
    CONF_QUARTER_HOUR_DEMAND,
    CONF_VOLTAGE,
    METER_MODE_TOTAL,
    phase_key,
)
from ..core.model import MeterReading, PhaseReading
from .states import (
    CURRENT_SCALE,
    POWER_SCALE,
    VOLTAGE_SCALE,
    Rejections,
    StateGetter,
    read_number,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

# Plausible ranges; anything outside is a glitch, not a measurement.
MAX_PHASE_POWER_W = 100_000.0
MAX_TOTAL_POWER_W = 300_000.0
VOLTAGE_RANGE_V = (100.0, 300.0)
CURRENT_RANGE_A = (0.0, 250.0)


@dataclass(frozen=True, slots=True)
class PhaseEntities:
    power_import: str | None = None
    power_export: str | None = None
    voltage: str | None = None
    current: str | None = None

    def all(self) -> tuple[str, ...]:
        return tuple(
            entity_id
            for entity_id in (self.power_import, self.power_export, self.voltage, self.current)
            if entity_id
        )


@dataclass(frozen=True, slots=True)
class MeterEntities:
    """Which entities make up the meter; per phase, total only, or a mix."""

    phases: tuple[PhaseEntities, ...] = ()
    power_import_total: str | None = None
    power_export_total: str | None = None
    quarter_hour_demand: str | None = None

    def all(self) -> tuple[str, ...]:
        entity_ids = [entity_id for phase in self.phases for entity_id in phase.all()]
        entity_ids += [
            entity_id
            for entity_id in (
                self.power_import_total,
                self.power_export_total,
                self.quarter_hour_demand,
            )
            if entity_id
        ]
        return tuple(dict.fromkeys(entity_ids))

    @property
    def pace_entity(self) -> str | None:
        """The entity whose updates set the meter's pace: the first power entity."""
        for phase in self.phases:
            if phase.power_import:
                return phase.power_import
        if self.power_import_total:
            return self.power_import_total
        entity_ids = self.all()
        return entity_ids[0] if entity_ids else None


def _entity(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def meter_entities_from_data(data: Mapping[str, Any], phases: int) -> MeterEntities:
    """Read the meter's entities from the config entry's data."""
    per_phase: tuple[PhaseEntities, ...] = ()
    if data.get(CONF_METER_MODE) != METER_MODE_TOTAL:
        per_phase = tuple(
            PhaseEntities(
                power_import=_entity(data, phase_key(CONF_POWER_IMPORT, phase)),
                power_export=_entity(data, phase_key(CONF_POWER_EXPORT, phase)),
                voltage=_entity(data, phase_key(CONF_VOLTAGE, phase)),
                current=_entity(data, phase_key(CONF_CURRENT, phase)),
            )
            for phase in range(1, phases + 1)
        )
    return MeterEntities(
        phases=per_phase,
        power_import_total=_entity(data, CONF_POWER_IMPORT_TOTAL),
        power_export_total=_entity(data, CONF_POWER_EXPORT_TOTAL),
        quarter_hour_demand=_entity(data, CONF_QUARTER_HOUR_DEMAND),
    )


def _net_power(
    get_state: StateGetter,
    import_entity: str | None,
    export_entity: str | None,
    limit_w: float,
    rejections: Rejections,
) -> float | None:
    """Import minus export; unknown when a configured half is unknown."""
    if import_entity is None:
        return None
    valid = (0.0, limit_w)
    imported = read_number(get_state, import_entity, POWER_SCALE, valid, rejections)
    if imported is None:
        return None
    if export_entity is None:
        return imported
    exported = read_number(get_state, export_entity, POWER_SCALE, valid, rejections)
    return None if exported is None else imported - exported


def read_meter(
    get_state: StateGetter,
    entities: MeterEntities,
    timestamp: datetime,
    rejections: Rejections,
) -> MeterReading:
    """The meter as Home Assistant shows it now; unusable values become None."""
    phases = tuple(
        PhaseReading(
            power_w=_net_power(
                get_state,
                phase.power_import,
                phase.power_export,
                MAX_PHASE_POWER_W,
                rejections,
            ),
            voltage_v=read_number(
                get_state, phase.voltage, VOLTAGE_SCALE, VOLTAGE_RANGE_V, rejections
            ),
            current_a=read_number(
                get_state, phase.current, CURRENT_SCALE, CURRENT_RANGE_A, rejections
            ),
        )
        for phase in entities.phases
    )
    total = _net_power(
        get_state,
        entities.power_import_total,
        entities.power_export_total,
        MAX_TOTAL_POWER_W,
        rejections,
    )
    if total is None and phases and all(phase.power_w is not None for phase in phases):
        total = sum(phase.power_w for phase in phases if phase.power_w is not None)
    quarter_hour = read_number(
        get_state,
        entities.quarter_hour_demand,
        POWER_SCALE,
        (0.0, MAX_TOTAL_POWER_W),
        rejections,
    )
    return MeterReading(
        timestamp=timestamp,
        phases=phases,
        total_power_w=total,
        quarter_hour_average_w=quarter_hour,
    )
