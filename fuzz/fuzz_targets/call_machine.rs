//! The call state machine under any sequence of events, at any times: every step keeps the
//! invariants the property tests check (`call::machine::invariants`), and once every armed
//! timer has fired the call has ended or is active with both sides bound. Events come from
//! the input bytes; parties, strangers, connections, timers and payloads are drawn from small
//! sets so that sequences meet each other.
#![no_main]

use duet::call::Timing;
use duet::call::machine::invariants::{self, World};
use duet::call::machine::{CallState, Event, Media, Phase, Role, Timer, step};
use duet::protocol::methods::Signal;
use duet::protocol::{RawData, Status, User};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const TIMING: Timing = Timing { ring_timeout_ms: 30_000, reconnect_grace_ms: 20_000 };
const CONNS: [&str; 5] = ["a1", "a2", "b1", "b2", "c1"];

fn user(id: i64) -> User {
    User { id, username: format!("u{id}"), display_name: format!("User {id}"), status: Status::Available }
}

fn event(u: &mut Unstructured<'_>) -> Result<Event> {
    let who = |u: &mut Unstructured<'_>| -> Result<i64> { Ok(*u.choose(&[1i64, 2, 3])?) };
    let conn = |u: &mut Unstructured<'_>| -> Result<duet::protocol::conn::ConnId> { Ok((*u.choose(&CONNS)?).into()) };
    Ok(match u.int_in_range(0u8..=13)? {
        0 => Event::Accept { user: who(u)?, conn: conn(u)? },
        1 => Event::Reject { user: who(u)?, conn: conn(u)? },
        2 => Event::Cancel { user: who(u)?, conn: conn(u)? },
        3 => Event::Hangup { user: who(u)?, conn: conn(u)? },
        4 => Event::Glare { user: who(u)?, to: who(u)?, conn: conn(u)? },
        5 => {
            let kind = *u.choose(&[Signal::Offer, Signal::Answer, Signal::Candidate])?;
            let to = if u.arbitrary()? { Some(who(u)?) } else { None };
            let data = if u.arbitrary()? { Some(RawData::of(&serde_json::json!({ "sdp": { "type": "offer", "sdp": u.arbitrary::<String>()? } }))) } else { None };
            Event::Signal { kind, user: who(u)?, conn: conn(u)?, to, implicit: u.arbitrary()?, data }
        }
        6 => Event::Report { user: who(u)?, stats: serde_json::json!({ "rttMs": u.arbitrary::<u16>()? }) },
        7 => Event::ConnectionLost { conn: conn(u)?, logout: u.arbitrary()? },
        8 => Event::Resume { user: who(u)?, conn: conn(u)? },
        9 => Event::TimerFired(*u.choose(&[Timer::Ring, Timer::Grace(Role::Caller), Timer::Grace(Role::Callee)])?),
        10 => Event::Restored,
        11 => Event::Revived,
        12 => Event::Abort,
        _ => Event::Start,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let media = Media { audio: u.arbitrary().unwrap_or(true), video: u.arbitrary().unwrap_or(true) };
    let fresh = CallState::new("call-1".into(), user(1), "a1".into(), user(2), media, 1_000);
    let mut world = World::default();
    let start = step(fresh.clone(), Event::Start, 1_000, TIMING);
    invariants::check_step(&fresh, &Event::Start, &start, &mut world);
    let mut state = start.state;
    let mut now = 1_000i64;
    while let (Ok(e), Ok(dt)) = (event(&mut u), u.int_in_range(0i64..=40_000)) {
        now += dt;
        let t = step(state.clone(), e.clone(), now, TIMING);
        invariants::check_step(&state, &e, &t, &mut world);
        state = t.state;
        if u.is_empty() {
            break;
        }
    }
    while let Some(timer) = state.timers.iter().next().copied() {
        now += 60_000;
        let e = Event::TimerFired(timer);
        let t = step(state.clone(), e.clone(), now, TIMING);
        invariants::check_step(&state, &e, &t, &mut world);
        state = t.state;
    }
    assert!(state.phase == Phase::Ended || (state.phase == Phase::Active && state.caller.conn.is_some() && state.callee.conn.is_some()));
});
