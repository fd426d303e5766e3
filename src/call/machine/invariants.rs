//! What must hold after every step of the call state machine, whatever the events: checked by
//! the property tests (`tests.rs`) and by the fuzz target `call_machine` (fuzz/), which drive
//! the machine with arbitrary event sequences. A violation panics with what broke.

use std::collections::BTreeSet;

use super::{CallState, Effect, Event, Phase, Role, Timer, Transition};

/// What the world has seen of one call so far.
#[derive(Default)]
pub struct World {
    armed: BTreeSet<Timer>,
    finished: usize,
}

pub fn check_step(before: &CallState, event: &Event, t: &Transition, world: &mut World) {
    let after = &t.state;
    // Timers: armed once, cancelled only if armed; fired ones leave the set.
    if let Event::TimerFired(timer) = event {
        world.armed.remove(timer);
    }
    if matches!(event, Event::Revived) && before.phase != Phase::Ended {
        // The old actor's timers died with it.
        world.armed.clear();
    }
    for e in &t.effects {
        match e {
            Effect::Arm(timer, _) => assert!(world.armed.insert(*timer), "{timer:?} armed twice"),
            Effect::Cancel(timer) => assert!(world.armed.remove(timer), "{timer:?} cancelled but not armed"),
            Effect::Finished => world.finished += 1,
            _ => {}
        }
    }
    assert_eq!(world.armed, after.timers, "the state's timers are the armed ones");

    // An ended call is inert.
    if before.phase == Phase::Ended {
        assert_eq!(before, after);
        assert!(t.effects.is_empty(), "{event:?} changed an ended call: {:?}", t.effects);
    }
    // Ended exactly once, with one final record, and no timer left.
    assert_eq!(after.phase == Phase::Ended, after.ending.is_some());
    assert_eq!(world.finished, usize::from(after.phase == Phase::Ended));
    if t.effects.contains(&Effect::Finished) {
        let persist = t.effects.iter().rposition(|e| *e == Effect::Persist);
        let finished = t.effects.iter().position(|e| *e == Effect::Finished);
        assert!(persist < finished, "the final record is written before the session stops");
        assert!(after.timers.is_empty());
        assert!(after.ended_at.is_some());
    }
    // Never neither live nor ended: a ringing call always has its ring timer; a party away
    // always has its grace; an active call has each side bound or coming back.
    if after.phase == Phase::Ringing {
        assert!(after.timers.contains(&Timer::Ring), "ringing without a ring timer");
    }
    for role in [Role::Caller, Role::Callee] {
        let p = after.party(role);
        if after.phase != Phase::Ended && p.lost_since.is_some() {
            assert!(p.conn.is_none());
            assert!(after.timers.contains(&Timer::Grace(role)), "{role:?} away without a grace");
        }
        if after.phase == Phase::Active {
            assert!(p.conn.is_some() || after.timers.contains(&Timer::Grace(role)), "{role:?} neither bound nor awaited");
        }
    }
    // Signaling is forwarded only in an active call, from a bound connection to the peer's.
    for e in &t.effects {
        if let Effect::ToConn(target, frame) = e {
            if [10009, 10010, 10011].contains(&frame.code) {
                let Event::Signal { user, conn, .. } = event else { panic!("signaling frame from {event:?}") };
                assert_eq!(before.phase, Phase::Active);
                let Some(role) = before.role_of(*user) else { panic!("signaling from {user}, who is not a party") };
                assert_eq!(before.party(role).conn.as_ref(), Some(conn));
                assert_eq!(before.party(role.other()).conn.as_ref(), Some(target));
            }
        }
        if let Effect::ToUser { frame, .. } = e {
            assert!(![10009, 10010, 10011].contains(&frame.code), "signaling is never fanned out to a user");
        }
    }
    // A refused event changes nothing.
    if t.reply.is_err() {
        assert_eq!(before, after, "{event:?} was refused but changed the call");
    }
}

