"""Simulated SunSpec devices with a real model chain at 40000.

Point offsets come from the SunSpec Alliance model definitions (sunspec/models,
json/model_<id>.json): offsets below count from the first point after ID and L.
Scale factors are deliberately not zero so a profile that ignores one reads wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .simulator import RegisterBank, Table, from_s16, s16, text

if TYPE_CHECKING:
    from pymodbus.constants import ExcCodes

BASE = 40000
MODEL_LENGTHS = {1: 66, 103: 50, 121: 30, 123: 24, 124: 24, 203: 105, 802: 62}


@dataclass(frozen=True)
class Chain:
    """Where each model's data starts, as laid out by `build_chain`."""

    starts: dict[int, int]

    def at(self, model: int, offset: int) -> int:
        return self.starts[model] + offset


def build_chain(bank: RegisterBank, unit: int, models: list[int], base: int = BASE) -> Chain:
    """'SunS', then [ID, L, data...] per model, then the end marker 0xFFFF, 0."""
    bank.set(unit, Table.HOLDING, base, [0x5375, 0x6E53])
    address = base + 2
    starts: dict[int, int] = {}
    for model in models:
        length = MODEL_LENGTHS[model]
        bank.set(unit, Table.HOLDING, address, [model, length] + [0] * length)
        starts[model] = address + 2
        address += 2 + length
    bank.set(unit, Table.HOLDING, address, [0xFFFF, 0])
    return Chain(starts)


def common_model(bank: RegisterBank, unit: int, chain: Chain, model_name: str) -> None:
    """Model 1: Mn 0 (16), Md 16 (16), Opt 32 (8), Vr 40 (8), SN 48 (16), DA 64."""
    bank.set(unit, Table.HOLDING, chain.at(1, 0), text("SimSpec", 16))
    bank.set(unit, Table.HOLDING, chain.at(1, 16), text(model_name, 16))
    bank.set(unit, Table.HOLDING, chain.at(1, 40), text("1.2.3", 8))
    bank.set(unit, Table.HOLDING, chain.at(1, 48), text("SN-0042", 16))
    bank.set(unit, Table.HOLDING, chain.at(1, 64), [unit])


class SunSpecBatterySim:
    """A hybrid inverter with storage: models 1, 124 and 802.

    Model 124: WChaMax 0, StorCtl_Mod 3, ChaState 6, OutWRte 10, InWRte 11,
    InOutWRte_RvrtTms 13, WChaMax_SF 16, ChaState_SF 20, InOutWRte_SF 23.
    Model 802: SoC 9, W 45, SoC_SF 54, W_SF 61.
    The rate window [-OutWRte, +InWRte] (in % of WChaMax) bounds the battery power
    (+ charging); the battery otherwise does `autonomous_w`. Model 802 W is reported
    in generator convention (+ discharging).
    """

    WCHA_MAX_W = 5000.0

    def __init__(
        self,
        bank: RegisterBank,
        unit: int = 1,
        *,
        capacity_wh: float = 10000.0,
        soc_pct: float = 50.0,
        with_802: bool = True,
    ) -> None:
        self.bank = bank
        self.unit = unit
        self.capacity_wh = capacity_wh
        self.soc_pct = soc_pct
        self.autonomous_w = 0.0
        self.power_w = 0.0
        self.rates_written_at = time.monotonic()
        models = [1, 124, 802] if with_802 else [1, 124]
        self.chain = build_chain(bank, unit, models)
        common_model(bank, unit, self.chain, "SimBattery")
        at = self.chain.at
        bank.set(unit, Table.HOLDING, at(124, 0), [500])  # WChaMax 500 x 10^1 W
        bank.set(unit, Table.HOLDING, at(124, 16), [s16(1)])  # WChaMax_SF
        bank.set(unit, Table.HOLDING, at(124, 20), [s16(-1)])  # ChaState_SF: 0.1 %
        bank.set(unit, Table.HOLDING, at(124, 23), [s16(-2)])  # InOutWRte_SF: 0.01 %
        for offset in (3, 10, 11, 13):
            bank.set(unit, Table.HOLDING, at(124, offset), [0], writable=True)
        if with_802:
            bank.set(unit, Table.HOLDING, at(802, 54), [s16(-1)])  # SoC_SF
            bank.set(unit, Table.HOLDING, at(802, 61), [s16(1)])  # W_SF: 10 W steps
        bank.hooks.append(self._on_write)
        self._publish()

    def _word(self, offset: int) -> int:
        return self.bank.get(self.unit, Table.HOLDING, self.chain.at(124, offset))[0]

    def _on_write(self, unit: int, table: Table, address: int, words: list[int]) -> ExcCodes | None:
        if unit == self.unit and self.chain.at(124, 10) <= address <= self.chain.at(124, 11):
            self.rates_written_at = time.monotonic()
        return None

    def bounds_w(self, now: float) -> tuple[float, float]:
        mode = self._word(3)
        revert_s = self._word(13)
        if revert_s and now - self.rates_written_at > revert_s:
            mode = 0  # the revert timer expired: rates no longer apply
        low, high = -self.WCHA_MAX_W, self.WCHA_MAX_W
        if mode & 1:
            high = from_s16(self._word(11)) / 100.0 * self.WCHA_MAX_W / 100.0
        if mode & 2:
            low = -from_s16(self._word(10)) / 100.0 * self.WCHA_MAX_W / 100.0
        return low, high

    def step(self, now: float, dt: float) -> None:
        low, high = self.bounds_w(now)
        power = max(low, min(high, self.autonomous_w)) if low <= high else 0.0
        if (self.soc_pct >= 100.0 and power > 0) or (self.soc_pct <= 0.0 and power < 0):
            power = 0.0
        self.power_w = power
        self.soc_pct = max(
            0.0, min(100.0, self.soc_pct + power * dt / 3600.0 / self.capacity_wh * 100)
        )
        self._publish()

    def _publish(self) -> None:
        at = self.chain.at
        self.bank.set(self.unit, Table.HOLDING, at(124, 6), [round(self.soc_pct * 10)])
        if 802 in self.chain.starts:
            self.bank.set(self.unit, Table.HOLDING, at(802, 9), [round(self.soc_pct * 10)])
            self.bank.set(self.unit, Table.HOLDING, at(802, 45), [s16(round(-self.power_w / 10))])


class SunSpecInverterSim:
    """A PV inverter: models 1, 103 (W 12, W_SF 13), 121 (WMax 0, WMax_SF 20) and 123
    (WMaxLimPct 3, WMaxLimPct_RvrtTms 5, WMaxLim_Ena 7, WMaxLimPct_SF 21)."""

    WMAX_W = 6000.0

    def __init__(self, bank: RegisterBank, unit: int = 1, *, available_w: float = 4000.0) -> None:
        self.bank = bank
        self.unit = unit
        self.available_w = available_w
        self.output_w = available_w
        self.chain = build_chain(bank, unit, [1, 103, 121, 123])
        common_model(bank, unit, self.chain, "SimInverter")
        at = self.chain.at
        bank.set(unit, Table.HOLDING, at(121, 0), [600])  # WMax 600 x 10^1 W
        bank.set(unit, Table.HOLDING, at(121, 20), [s16(1)])  # WMax_SF
        bank.set(unit, Table.HOLDING, at(123, 21), [s16(-1)])  # WMaxLimPct_SF: 0.1 %
        bank.set(unit, Table.HOLDING, at(103, 13), [s16(0)])  # W_SF
        for offset in (3, 5, 7):
            bank.set(unit, Table.HOLDING, at(123, offset), [0], writable=True)
        self.step(time.monotonic(), 0.0)

    def step(self, now: float, dt: float) -> None:
        at = self.chain.at
        enabled = self.bank.get(self.unit, Table.HOLDING, at(123, 7))[0] == 1
        limit_pct = self.bank.get(self.unit, Table.HOLDING, at(123, 3))[0] / 10.0
        cap = limit_pct / 100.0 * self.WMAX_W if enabled else self.WMAX_W
        self.output_w = min(self.available_w, cap)
        self.bank.set(self.unit, Table.HOLDING, at(103, 12), [s16(round(self.output_w))])


class SunSpecMeterSim:
    """A wye meter, model 203: AphA-C 1-3, A_SF 4, PhVphA-C 6-8, V_SF 13, W 16,
    WphA-C 17-19, W_SF 20, TotWhExp 36 (acc32), TotWhImp 44 (acc32), TotWh_SF 52."""

    def __init__(self, bank: RegisterBank, unit: int = 1) -> None:
        self.bank = bank
        self.unit = unit
        self.chain = build_chain(bank, unit, [1, 203])
        common_model(bank, unit, self.chain, "SimMeter")
        at = self.chain.at
        bank.set(unit, Table.HOLDING, at(203, 4), [s16(-2)])  # A_SF: 0.01 A
        bank.set(unit, Table.HOLDING, at(203, 13), [s16(-1)])  # V_SF: 0.1 V
        bank.set(unit, Table.HOLDING, at(203, 20), [s16(1)])  # W_SF: 10 W steps
        bank.set(unit, Table.HOLDING, at(203, 52), [s16(0)])  # TotWh_SF
        self.set_phases((0.0, 0.0, 0.0))

    def set_phases(
        self,
        powers_w: tuple[float, float, float],
        *,
        import_wh: int = 123456,
        export_wh: int = 6543,
    ) -> None:
        at = self.chain.at
        currents = [abs(power) / 230.0 for power in powers_w]
        self.bank.set(self.unit, Table.HOLDING, at(203, 1), [s16(round(c * 100)) for c in currents])
        self.bank.set(self.unit, Table.HOLDING, at(203, 6), [2300, 2310, 2290])
        self.bank.set(self.unit, Table.HOLDING, at(203, 16), [s16(round(sum(powers_w) / 10))])
        self.bank.set(self.unit, Table.HOLDING, at(203, 17), [s16(round(p / 10)) for p in powers_w])
        self.bank.set(self.unit, Table.HOLDING, at(203, 36), [export_wh >> 16, export_wh & 0xFFFF])
        self.bank.set(self.unit, Table.HOLDING, at(203, 44), [import_wh >> 16, import_wh & 0xFFFF])
