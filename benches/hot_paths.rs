//! Micro-benchmarks of the hot paths (criterion): decoding a client frame, encoding a server
//! frame, one state machine step for a relayed candidate, and the presence fan-out (who hears of
//! a user, and the contact list a connect sends). `cargo bench --bench hot_paths`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use duet::call::machine::{self, CallState, Event, Media, Signal, Timing};
use duet::presence::Directory;
use duet::protocol::{ClientFrame, Code, FrameData, RawData, ServerFrame, Status, User};
use duet::store::AccountRow;
use serde_json::json;

const CANDIDATE: &str = r#"{"method":"Message/Candidate","seq":42,"toId":9,"data":{"callId":"3f0e9a54-4c1b-4d0e-9b61-0c5a2f1e7d11","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr 192.168.1.20 rport 61234 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}}"#;

fn user(id: i64) -> User {
    User { id, username: format!("user{id}"), display_name: format!("User {id}"), status: Status::Available }
}

fn frames(c: &mut Criterion) {
    c.bench_function("decode a candidate frame", |b| b.iter(|| ClientFrame::decode(black_box(CANDIDATE)).unwrap()));
    let frame = ClientFrame::decode(CANDIDATE).unwrap();
    let relay = FrameData::Relay { from_id: 7, call_id: "3f0e9a54-4c1b-4d0e-9b61-0c5a2f1e7d11".into(), data: frame.raw_data.clone() };
    let out = ServerFrame::event(Code::Candidate, "candidate", relay);
    c.bench_function("encode a relayed candidate (10009)", |b| b.iter(|| black_box(&out).to_text()));
    let presence = ServerFrame::event(Code::UserOnline, "User 7 is online", json!(user(7)));
    c.bench_function("encode a presence frame (10006)", |b| b.iter(|| black_box(&presence).to_text()));
}

fn machine_step(c: &mut Criterion) {
    let timing = Timing { ring_timeout_ms: 30_000, reconnect_grace_ms: 20_000 };
    let call = CallState::new("c1".into(), user(7), "7-a".into(), user(9), Media { audio: true, video: true }, 0);
    let call = machine::step(call, Event::Start, 1, timing).state;
    let call = machine::step(call, Event::Accept { user: 9, conn: "9-b".into() }, 2, timing).state;
    let data = ClientFrame::decode(CANDIDATE).unwrap().raw_data;
    c.bench_function("state machine: relay one candidate", |b| {
        b.iter(|| {
            let event = Event::Signal { kind: Signal::Candidate, user: 7, conn: "7-a".into(), to: Some(9), implicit: false, data: data.clone() };
            machine::step(black_box(call.clone()), event, 3, timing)
        })
    });
    let _ = RawData::of(&json!({}));
}

fn fan_out(c: &mut Criterion) {
    for (accounts, full_max) in [(500usize, 500usize), (5_000, 500), (50_000, 500)] {
        let dir = Directory::new(full_max);
        for id in 1..=accounts as i64 {
            dir.upsert(AccountRow { id, username: format!("user{id}"), display_name: format!("User {id}"), disabled: false });
        }
        // Everyone has ten contacts.
        for id in 1..=accounts as i64 {
            for k in 1..=10 {
                dir.meet(id, (id + k * 37) % accounts as i64 + 1);
            }
        }
        c.bench_function(&format!("contact list of one user, {accounts} accounts"), |b| b.iter(|| dir.contact_list(black_box(42), |_| Status::Available)));
        c.bench_function(&format!("audience of one user, {accounts} accounts"), |b| b.iter(|| dir.audience(black_box(42))));
    }
}

criterion_group!(benches, frames, machine_step, fan_out);
criterion_main!(benches);
