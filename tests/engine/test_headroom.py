"""Room bookkeeping per phase, nested circuit and total."""

from __future__ import annotations

import pytest

from netbewust_core.guard.headroom import Binding, Headroom, circuit_chains
from netbewust_core.limits import LimitSource
from netbewust_core.model import Circuit, LimitReason

CIRCUITS = (Circuit("main", 20.0), Circuit("garage", 16.0, "main"), Circuit("bay", 10.0, "garage"))


def room(total_w: float | None = None, per_phase: bool = True) -> Headroom:
    phases = 3 if per_phase else 1
    return Headroom(
        phase_room_a=[12.0, 30.0, 30.0][:phases] if per_phase else [60.0],
        phase_source=[LimitSource.FUSE] * phases,
        voltage_v=[230.0] * phases,
        per_phase=per_phase,
        total_room_w=total_w,
        total_source=None if total_w is None else LimitSource.DSO,
        circuits=CIRCUITS,
        chains=circuit_chains(CIRCUITS),
        connection_phases=3,
    )


def test_chains_list_ancestors_innermost_first() -> None:
    assert circuit_chains(CIRCUITS)["bay"] == ("bay", "garage", "main")


@pytest.mark.parametrize(
    "circuits",
    [
        (Circuit("a", 10.0, "missing"),),
        (Circuit("a", 10.0, "b"), Circuit("b", 10.0, "a")),
        (Circuit("a", 10.0), Circuit("a", 16.0)),
    ],
)
def test_bad_circuit_trees_are_rejected(circuits: tuple[Circuit, ...]) -> None:
    with pytest.raises(ValueError, match="circuit"):
        circuit_chains(circuits)


def test_the_weakest_phase_binds() -> None:
    assert room().available_a((1, 2, 3), None) == (12.0, Binding(LimitReason.FUSE, 1))


def test_nested_circuits_bind_and_take_propagates_upwards() -> None:
    headroom = room()
    assert headroom.available_a((2,), "bay") == (10.0, Binding(LimitReason.CIRCUIT, 2))
    headroom.take((2,), "bay", 8.0)
    assert headroom.available_a((2,), "garage") == (8.0, Binding(LimitReason.CIRCUIT, 2))
    assert headroom.available_a((2,), "main") == (12.0, Binding(LimitReason.CIRCUIT, 2))
    assert headroom.available_a((3,), "main") == (20.0, Binding(LimitReason.CIRCUIT, 3))
    assert headroom.phase_room_a == [12.0, 22.0, 30.0]


def test_total_cap_is_shared_by_all_phases() -> None:
    headroom = room(total_w=2760.0)  # 12 A at 230 V over three phases: 4 A each
    assert headroom.available_a((1, 2, 3), None) == (4.0, Binding(LimitReason.DSO))
    assert headroom.available_a((2,), None) == (12.0, Binding(LimitReason.DSO))


def test_total_only_meter_sums_a_device_across_phases() -> None:
    headroom = room(per_phase=False)
    available, binding = headroom.available_a((1, 2, 3), None)
    assert available == 20.0  # 60 A virtual phase / 3 phases
    assert binding == Binding(LimitReason.FUSE, None)
    headroom.take((1, 2, 3), None, 10.0)
    assert headroom.phase_room_a == [30.0]
