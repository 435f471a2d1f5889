//! The lease bookkeeping in memory: what is served, charged and given back.

use super::*;

fn taken(state: &mut LeaseState, id: &str, amount: i64, small: bool) {
    let asked = state.lease.as_ref().map(|l| l.id.clone());
    assert!(state.add_taken(asked.as_deref(), id.into(), amount, small, 0, 60));
}

#[test]
fn holds_are_served_only_from_what_the_lease_has() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    assert!(state.serve("u", 10, now).is_none());
    let plan = state.plan_take(10, now);
    assert_eq!((plan.lease_id, plan.need, plan.available), (None, 10, 0));
    taken(&mut state, "7", 25, false);
    let first = state.serve("u", 10, now).unwrap();
    assert_eq!(lease_of(&first), Some("7"));
    assert!(state.serve("u", 10, now).is_some());
    assert!(state.serve("u", 10, now).is_none(), "5 left, 10 asked");
    let plan = state.plan_take(10, now);
    assert_eq!((plan.lease_id.as_deref(), plan.need), (Some("7"), 5));
    assert!(
        plan.want >= plan.need + 10,
        "a take asks for the demand beyond the need"
    );
}

#[test]
fn a_settle_gives_back_the_unspent_part_and_numbers_its_charge() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    taken(&mut state, "7", 100, false);
    state.serve("u", 40, now).unwrap();
    state.serve("u", 40, now).unwrap();
    let first = state.settle("7", 40, 15, now).unwrap();
    let second = state.settle("7", 40, 99, now).unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    // 100 − 15 − 40 (the charge is capped at the hold).
    assert_eq!(state.lease.as_ref().unwrap().available, 45);
    assert_eq!(state.in_flight_micros, 0);
    // A lease gone meanwhile: nothing to charge.
    state.serve("u", 5, now).unwrap();
    state.forget("7");
    assert!(state.settle("7", 5, 5, now).is_none());
}

#[test]
fn a_refused_hold_gives_the_lease_back_once_nothing_is_in_flight() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    // A large balance when it was taken: kept until it idles, whatever the surplus.
    taken(&mut state, "7", 100, false);
    state.serve("u", 70, now).unwrap();
    state.serve("u", 20, now).unwrap();
    // A hold of 50 refused (the balance could not cover the other 40): a hold is in flight,
    // so nothing goes back yet, but the last settle gives everything back.
    assert!(state.refused("u").is_none());
    state.settle("7", 70, 70, now);
    assert!(
        state.surplus("u", now).is_none(),
        "a hold is still in flight"
    );
    state.settle("7", 20, 5, now);
    let give = state.surplus("u", now).unwrap();
    assert_eq!((give.amount_micros, give.close), (25, true));
    assert!(state.lease.is_none());
    // Refused with nothing in flight: everything at once.
    taken(&mut state, "8", 30, false);
    let give = state.refused("u").unwrap();
    assert_eq!(
        (give.lease_id.as_str(), give.amount_micros, give.close),
        ("8", 30, true)
    );
    // No lease: nothing to give.
    assert!(state.refused("u").is_none());
}

#[test]
fn a_small_balance_goes_back_as_soon_as_nothing_is_in_flight() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    // Needed 20, the balance allowed 30.
    taken(&mut state, "7", 30, true);
    state.serve("u", 10, now).unwrap();
    state.serve("u", 10, now).unwrap();
    state.settle("7", 10, 4, now);
    assert!(
        state.surplus("u", now).is_none(),
        "a hold is still in flight"
    );
    state.settle("7", 10, 4, now);
    let give = state.surplus("u", now).unwrap();
    assert!(give.close);
    assert_eq!(give.amount_micros, 22);
    assert!(state.lease.is_none());
}

#[test]
fn only_an_idle_lease_is_closed() {
    let now = Instant::now();
    let idle = Duration::from_secs(1);
    let mut state = LeaseState::new(now);
    taken(&mut state, "7", 50, false);
    state.serve("u", 10, now).unwrap();
    assert!(state.close_if_idle("u", now + idle * 2, idle).is_none());
    state.settle("7", 10, 10, now);
    assert!(state.close_if_idle("u", now, idle).is_none());
    let give = state.close_if_idle("u", now + idle, idle).unwrap();
    assert_eq!((give.amount_micros, give.seq), (40, 2));
}

#[test]
fn a_take_into_a_lease_closed_meanwhile_is_not_kept() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    taken(&mut state, "7", 30, true);
    state.serve("u", 10, now).unwrap();
    // A take for lease 7 starts; meanwhile the settle closes it (the balance is small).
    let plan = state.plan_take(50, now);
    assert_eq!(plan.lease_id.as_deref(), Some("7"));
    state.settle("7", 10, 4, now);
    let close = state.surplus("u", now).unwrap();
    assert!(close.close);
    // Its close gives the take back; the lease is not taken up again with numbers from 1.
    assert!(!state.add_taken(Some("7"), "7".into(), 40, false, 0, 60));
    assert!(state.lease.is_none());
    // A new lease (a new row) is kept.
    assert!(state.add_taken(None, "9".into(), 40, false, 0, 60));
}

#[test]
fn a_lease_sized_by_its_floor_is_kept_while_the_demand_is_low() {
    let now = Instant::now();
    let mut state = LeaseState::new(now);
    let plan = state.plan_take(10, now);
    assert_eq!(plan.floor, 10 * FLOOR_HOLDS);
    // The store granted the floor: 320 for a demand of one hold.
    let asked = plan.lease_id.clone();
    assert!(state.add_taken(asked.as_deref(), "7".into(), 320, false, plan.floor, 60));
    state.serve("u", 10, now).unwrap();
    state.settle("7", 10, 4, now);
    assert!(
        state.surplus("u", now).is_none(),
        "the floor is not surplus"
    );
    // Beyond twice the floor, the rest goes back down to it.
    state.serve("u", 10, now).unwrap();
    state.settle("7", 10, 10, now);
    assert!(state.add_taken(Some("7"), "7".into(), 400, false, plan.floor, 60));
    let give = state.surplus("u", now).unwrap();
    assert_eq!((give.amount_micros, give.close), (706 - 320, false));
}
