//! The machine alone: each rule once by hand, then random event sequences checked against the
//! invariants of PROTOCOL.md section 4.

use proptest::prelude::*;

use super::*;
use super::invariants::{World, check_step};
use crate::protocol::Status;

const T: Timing = Timing { ring_timeout_ms: 30_000, reconnect_grace_ms: 20_000 };

fn user(id: i64) -> User {
    User { id, username: format!("u{id}"), display_name: format!("User {id}"), status: Status::Available }
}

fn conn(name: &str) -> ConnId {
    name.into()
}

fn fresh() -> CallState {
    CallState::new("call-1".into(), user(1), conn("a1"), user(2), Media { audio: true, video: true }, 1_000)
}

fn run(state: CallState, event: Event, now: i64) -> (CallState, Reply, Vec<Effect>) {
    let t = step(state, event, now, T);
    (t.state, t.reply, t.effects)
}

fn codes_to(effects: &[Effect], target: &str) -> Vec<u16> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToConn(c, f) if c.as_ref() == target => Some(f.code),
            _ => None,
        })
        .collect()
}

fn user_codes(effects: &[Effect], user: i64) -> Vec<u16> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToUser { user: u, frame, .. } if *u == user => Some(frame.code),
            _ => None,
        })
        .collect()
}

fn started() -> CallState {
    let (s, r, fx) = run(fresh(), Event::Start, 1_000);
    assert!(r.is_ok());
    assert_eq!(user_codes(&fx, 2), vec![10012]);
    assert_eq!(codes_to(&fx, "a1"), vec![10013]);
    assert!(fx.contains(&Effect::Arm(Timer::Ring, 30_000)));
    s
}

fn active() -> CallState {
    let (s, r, fx) = run(started(), Event::Accept { user: 2, conn: conn("b1") }, 2_000);
    assert!(r.is_ok());
    assert_eq!(codes_to(&fx, "a1"), vec![10014]);
    assert!(fx.iter().any(|e| matches!(e, Effect::ToUser { user: 2, except: Some(c), frame } if c.as_ref() == "b1" && frame.code == 10018)));
    assert!(fx.contains(&Effect::Cancel(Timer::Ring)));
    assert_eq!(s.phase, Phase::Active);
    s
}

#[test]
fn accept_binds_the_answering_connection_and_second_answers_are_refused() {
    let s = active();
    assert_eq!(s.callee.conn.as_deref(), Some("b1"));
    let (_, r, fx) = run(s, Event::Accept { user: 2, conn: conn("b2") }, 2_100);
    assert_eq!(r, Err(WsError::BadState));
    assert!(fx.is_empty());
}

#[test]
fn strangers_and_the_wrong_party_are_refused() {
    let s = started();
    assert_eq!(run(s.clone(), Event::Accept { user: 3, conn: conn("c1") }, 1_100).1, Err(WsError::NotAParty));
    assert_eq!(run(s.clone(), Event::Accept { user: 1, conn: conn("a1") }, 1_100).1, Err(WsError::BadState));
    assert_eq!(run(s.clone(), Event::Cancel { user: 2, conn: conn("b1") }, 1_100).1, Err(WsError::BadState));
    assert_eq!(run(s, Event::Reject { user: 1, conn: conn("a1") }, 1_100).1, Err(WsError::BadState));
}

#[test]
fn reject_tells_the_caller_and_the_other_devices() {
    let (s, _, fx) = run(started(), Event::Reject { user: 2, conn: conn("b1") }, 1_500);
    assert_eq!(s.status(), CallStatus::Rejected);
    assert_eq!(codes_to(&fx, "a1"), vec![10015]);
    assert!(fx.iter().any(|e| matches!(e, Effect::ToUser { user: 2, except: Some(c), frame } if c.as_ref() == "b1" && frame.code == 10016)));
    assert_eq!(fx.iter().filter(|e| **e == Effect::Finished).count(), 1);
}

#[test]
fn cancel_and_timeout_end_a_ringing_call() {
    let (s, _, fx) = run(started(), Event::Cancel { user: 1, conn: conn("a1") }, 1_500);
    assert_eq!((s.status(), s.ending.as_ref().map(|e| e.reason)), (CallStatus::Cancelled, Some(EndReason::Cancelled)));
    assert_eq!(user_codes(&fx, 2), vec![10016]);
    let (s, _, fx) = run(started(), Event::TimerFired(Timer::Ring), 31_000);
    assert_eq!(s.status(), CallStatus::Missed);
    assert_eq!(codes_to(&fx, "a1"), vec![10016]);
    assert_eq!(user_codes(&fx, 2), vec![10016]);
}

#[test]
fn hangup_records_completed_with_its_duration() {
    let (s, _, fx) = run(active(), Event::Hangup { user: 1, conn: conn("a1") }, 12_000);
    assert_eq!(s.status(), CallStatus::Completed);
    assert_eq!(s.duration_ms(), Some(10_000));
    assert_eq!(codes_to(&fx, "b1"), vec![10016]);
    assert!(codes_to(&fx, "a1").is_empty(), "the asker gets the ack, not 10016");
    assert!(fx.contains(&Effect::InCall { user: 1, in_call: false }));
}

#[test]
fn signaling_flows_only_between_the_bound_connections_of_an_active_call() {
    let offer = |user, c: &str, to| Event::Signal { kind: Signal::Offer, user, conn: conn(c), to, implicit: false, data: Some(RawData::of(&json!({"sdp": {}}))) };
    assert_eq!(run(started(), offer(1, "a1", Some(2)), 1_100).1, Err(WsError::BadState));
    let s = active();
    let (_, r, fx) = run(s.clone(), offer(1, "a1", Some(2)), 2_100);
    assert!(r.is_ok());
    assert_eq!(codes_to(&fx, "b1"), vec![10010]);
    let (_, r, fx) = run(s.clone(), offer(2, "b1", None), 2_100);
    assert!(r.is_ok());
    assert_eq!(codes_to(&fx, "a1"), vec![10010]);
    assert_eq!(run(s.clone(), offer(2, "b2", Some(1)), 2_100).1, Err(WsError::BadState), "not from an unbound tab");
    assert_eq!(run(s.clone(), offer(3, "c1", Some(1)), 2_100).1, Err(WsError::NotAParty));
    assert_eq!(run(s, offer(1, "a1", Some(3)), 2_100).1, Err(WsError::NotAParty));
}

#[test]
fn a_dropped_connection_gets_its_grace_and_can_resume() {
    let (s, _, fx) = run(active(), Event::ConnectionLost { conn: conn("b1"), logout: false }, 3_000);
    assert_eq!(codes_to(&fx, "a1"), vec![10019]);
    assert!(fx.contains(&Effect::Arm(Timer::Grace(Role::Callee), 20_000)));
    let (s, r, fx) = run(s, Event::Resume { user: 2, conn: conn("b3") }, 4_000);
    assert_eq!(r.unwrap()["state"], "active");
    assert_eq!(codes_to(&fx, "b3"), vec![10020]);
    assert_eq!(codes_to(&fx, "a1"), vec![10019]);
    assert!(fx.contains(&Effect::Cancel(Timer::Grace(Role::Callee))));
    // Lost again, and this time the grace runs out.
    let (s, _, _) = run(s, Event::ConnectionLost { conn: conn("b3"), logout: false }, 5_000);
    let (s, _, fx) = run(s, Event::TimerFired(Timer::Grace(Role::Callee)), 25_000);
    assert_eq!((s.status(), s.ending.as_ref().map(|e| e.reason)), (CallStatus::Failed, Some(EndReason::PeerLost)));
    assert_eq!(codes_to(&fx, "a1"), vec![10016]);
}

#[test]
fn glare_merges_into_one_active_call() {
    assert_eq!(run(started(), Event::Glare { user: 3, to: 1, conn: conn("c1") }, 1_200).1, Err(WsError::AlreadyInCall));
    let (s, r, fx) = run(started(), Event::Glare { user: 2, to: 1, conn: conn("b1") }, 1_200);
    assert_eq!(r.unwrap()["merged"], true);
    assert_eq!(s.phase, Phase::Active);
    assert_eq!(codes_to(&fx, "a1"), vec![10014]);
}

#[test]
fn logout_ends_the_call() {
    let (s, _, fx) = run(active(), Event::ConnectionLost { conn: conn("a1"), logout: true }, 5_000);
    assert_eq!((s.status(), s.ending.as_ref().map(|e| e.reason)), (CallStatus::Completed, Some(EndReason::Logout)));
    assert_eq!(codes_to(&fx, "b1"), vec![10016]);
}

#[test]
fn a_revived_call_rearms_its_timers_for_the_time_left() {
    let (s, _, _) = run(active(), Event::ConnectionLost { conn: conn("b1"), logout: false }, 3_000);
    let (s, r, fx) = run(s, Event::Revived, 8_000);
    assert!(r.is_ok());
    assert_eq!(fx, vec![Effect::Arm(Timer::Grace(Role::Callee), 15_000)]);
    let (s, _, fx) = run(s, Event::Abort, 9_000);
    assert_eq!((s.status(), s.ending.as_ref().map(|e| e.reason)), (CallStatus::Failed, Some(EndReason::ServerError)));
    assert_eq!(codes_to(&fx, "a1"), vec![10016]);
}

#[test]
fn a_restored_call_waits_for_both_parties() {
    let (s, _, fx) = run(active(), Event::Restored, 50_000);
    assert!(s.caller.conn.is_none() && s.callee.conn.is_none());
    assert!(fx.contains(&Effect::Arm(Timer::Grace(Role::Caller), 20_000)));
    assert!(fx.contains(&Effect::Arm(Timer::Grace(Role::Callee), 20_000)));
    let (s, r, _) = run(s, Event::Resume { user: 1, conn: conn("a9") }, 51_000);
    assert_eq!(r.unwrap()["role"], "caller");
    assert_eq!(s.phase, Phase::Active);
}

// ---- properties ----

fn arb_conn() -> impl Strategy<Value = ConnId> {
    prop::sample::select(vec!["a1", "a2", "b1", "b2", "c1"]).prop_map(conn)
}

fn arb_user() -> impl Strategy<Value = i64> {
    prop::sample::select(vec![1i64, 2, 3])
}

fn arb_timer() -> impl Strategy<Value = Timer> {
    prop::sample::select(vec![Timer::Ring, Timer::Grace(Role::Caller), Timer::Grace(Role::Callee)])
}

fn arb_event() -> impl Strategy<Value = Event> {
    let kind = prop::sample::select(vec![Signal::Offer, Signal::Answer, Signal::Candidate]);
    prop_oneof![
        (arb_user(), arb_conn()).prop_map(|(user, conn)| Event::Accept { user, conn }),
        (arb_user(), arb_conn()).prop_map(|(user, conn)| Event::Reject { user, conn }),
        (arb_user(), arb_conn()).prop_map(|(user, conn)| Event::Cancel { user, conn }),
        (arb_user(), arb_conn()).prop_map(|(user, conn)| Event::Hangup { user, conn }),
        (arb_user(), arb_user(), arb_conn()).prop_map(|(user, to, conn)| Event::Glare { user, to, conn }),
        (kind, arb_user(), arb_conn(), prop::option::of(arb_user()), any::<bool>())
            .prop_map(|(kind, user, conn, to, implicit)| Event::Signal { kind, user, conn, to, implicit, data: None }),
        arb_user().prop_map(|user| Event::Report { user, stats: json!({"rttMs": 1}) }),
        (arb_conn(), any::<bool>()).prop_map(|(conn, logout)| Event::ConnectionLost { conn, logout }),
        (arb_user(), arb_conn()).prop_map(|(user, conn)| Event::Resume { user, conn }),
        arb_timer().prop_map(Event::TimerFired),
        Just(Event::Restored),
        Just(Event::Revived),
        Just(Event::Abort),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_event_sequences_keep_every_invariant(events in prop::collection::vec((arb_event(), 1i64..5_000), 0..40)) {
        let mut world = World::default();
        let start = step(fresh(), Event::Start, 1_000, T);
        check_step(&fresh(), &Event::Start, &start, &mut world);
        let mut state = start.state;
        let mut now = 1_000;
        for (event, dt) in events {
            now += dt;
            let t = step(state.clone(), event.clone(), now, T);
            check_step(&state, &event, &t, &mut world);
            state = t.state;
        }
        // Let every armed timer fire: the call ends, or it is active with both sides bound.
        while let Some(timer) = state.timers.iter().next().copied() {
            now += 60_000;
            let event = Event::TimerFired(timer);
            let t = step(state.clone(), event.clone(), now, T);
            check_step(&state, &event, &t, &mut world);
            state = t.state;
        }
        prop_assert!(state.phase == Phase::Ended || (state.phase == Phase::Active && state.caller.conn.is_some() && state.callee.conn.is_some()));
    }
}
