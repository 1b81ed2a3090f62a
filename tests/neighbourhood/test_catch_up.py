"""The emulated re-plan's catch-up: only where the home's limit has room for the car.

A car a little behind its plan used to ask its 6 A minimum in every quarter hour its
plan left idle, also where its day-ahead limit had no room for it; the guard then held
it back for lack of room, and in its next planned quarter hour it needed minimum + 1 A
hysteresis, which a limit sized for the plan does not leave: it charged nothing there.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from community_server.neighbourhood.realtime import Control, Requests, simulate
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource

from .conftest import scenario_of, street

HEADROOM_W = 300.0  # the limit's forecast-error headroom, less than 1 A on 3 phases


def test_a_car_behind_its_plan_charges_in_its_next_planned_quarter_hour() -> None:
    scenario = scenario_of(street())  # cars home at 18:00 (step 24), 6 A = 4140 W
    homes = scenario.homes
    home = 0
    session = next(s for s in homes.sessions if s.home == home)
    first, idle, planned_step = session.start_step, session.start_step + 1, session.start_step + 8
    ev_w = np.zeros((homes.count, scenario.n_steps))
    # 15.5 A planned, but the limit leaves exactly that: the guard gives 15 A, and the
    # car ends the quarter hour 86 Wh behind. Then idle until 6 A in `planned_step`.
    ev_w[home, first] = 15.5 * 690.0
    ev_w[home, planned_step] = homes.ev_min_w[home]
    base = homes.base_forecast_w[home] - homes.pv_w[home]
    intervals = []
    for step in range(first, planned_step + 1):
        allowed = ev_w[home, step] + (0.0 if step == first else HEADROOM_W)
        start = scenario.step_start(step)
        intervals.append(LimitInterval(start, start + timedelta(minutes=15), base[step] + allowed))
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=scenario.start,
        expires_at=scenario.step_start(scenario.n_steps),
        intervals=tuple(intervals),
    )
    requests = Requests(ev_w=ev_w, planned_limits=({home: limit},))
    outcome = simulate(scenario, requests, Control.GUARD)
    assert outcome.ev_w[home, first] == 15 * 690.0
    assert (outcome.ev_w[home, idle:planned_step] == 0.0).all()
    # 6 A and the few watts of catch-up the limit leaves room for: whole amperes, 6 A.
    assert outcome.ev_w[home, planned_step] == homes.ev_min_w[home]
