//! Operators see every call: one OpenTelemetry trace per call, decoded here from a real OTLP/HTTP
//! export, and Prometheus metrics checked by promtool and by values that move as calls are made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_TOKEN, Server, Ws, user, ok};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

/// An in-process OTLP/HTTP receiver: every span exported to it.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                for rs in req.resource_spans {
                    let service = rs.resource.as_ref().map(|r| r.attributes.iter().any(|a| a.key == "service.name")).unwrap_or(false);
                    assert!(service, "the resource names the service");
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref()).map(|v| match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// Waits for the root span of `call_id` and returns every span of its trace.
async fn trace_of(spans: &Arc<Mutex<Vec<Span>>>, call_id: &str) -> (Span, Vec<Span>) {
    for _ in 0..100 {
        {
            let all = spans.lock().unwrap();
            let roots: Vec<&Span> = all.iter().filter(|s| s.name == "call" && attr(s, "call.id").as_deref() == Some(call_id)).collect();
            if let Some(root) = roots.first() {
                assert_eq!(roots.len(), 1, "one root span per call");
                let trace: Vec<Span> = all.iter().filter(|s| s.trace_id == root.trace_id).cloned().collect();
                if trace.iter().any(|s| s.name == "call.ended") {
                    return ((*root).clone(), trace);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no trace exported for call {call_id}: {:?}", spans.lock().unwrap().iter().map(|s| s.name.clone()).collect::<Vec<_>>());
}


/// Alice calls bob, bob answers; a round of offer/answer and two candidates.
async fn call_with_signaling(server: &Server, a: &str, b: (i64, &str)) -> (String, Ws, Ws) {
    let mut aw = server.ws(a).await;
    let mut bw = server.ws(b.1).await;
    let id = ok(&aw.request(json!({"method": "Call/Invite", "toId": b.0}), 1).await)["callId"].as_str().unwrap().to_string();
    bw.wait_for(10012).await;
    ok(&bw.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await);
    aw.wait_for(10014).await;
    ok(&aw.request(json!({"method": "Message/Offer", "toId": b.0, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "v=0"}}}), 2).await);
    bw.wait_for(10010).await;
    ok(&bw.request(json!({"method": "Message/Answer", "data": {"callId": id, "sdp": {"type": "answer", "sdp": "v=0"}}}), 2).await);
    aw.wait_for(10011).await;
    for (i, typ) in ["host", "relay"].iter().enumerate() {
        let cand = format!("candidate:{i} 1 udp 1 10.0.0.{i} 5000{i} typ {typ}");
        ok(&aw.request(json!({"method": "Message/Candidate", "data": {"callId": id, "candidate": {"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0}}}), 3 + i as i64).await);
        bw.wait_for(10009).await;
    }
    (id, aw, bw)
}

async fn metrics(server: &Server) -> String {
    let res = reqwest::get(format!("{}/metrics", server.url)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    res.text().await.unwrap()
}

/// The value of one sample, `name{labels}` as written by the exporter (labels sorted as given).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

every_backend! {
    #[tokio::test]
    async fn each_call_is_one_trace_with_its_root_span_and_children() {
        let (endpoint, spans) = receiver().await;
        let server = Server::start_with(&[("DUET_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")]);
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, mut aw, mut bw) = call_with_signaling(&server, &at, (bob, &bt)).await;
        let stats = json!({"iceState": "connected", "localCandidateType": "host", "remoteCandidateType": "host", "rttMs": 3, "bitrateKbps": 1200, "packetLoss": 0});
        ok(&aw.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": stats}}), 9).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        ok(&bw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 9).await);
        aw.wait_for(10016).await;

        let (root, trace) = trace_of(&spans, &id).await;
        assert_eq!(attr(&root, "call.caller"), Some(alice.to_string()));
        assert_eq!(attr(&root, "call.callee"), Some(bob.to_string()));
        assert_eq!(attr(&root, "call.media.video"), Some("true".into()));
        assert_eq!(attr(&root, "call.status").as_deref(), Some("completed"));
        assert_eq!(attr(&root, "call.end_reason").as_deref(), Some("hangup"));
        assert_eq!(attr(&root, "call.failure_class").as_deref(), Some("ok"));
        assert_eq!(attr(&root, "call.ended_by"), Some(bob.to_string()));
        assert!(attr(&root, "call.duration_ms").unwrap().parse::<i64>().unwrap() >= 20);
        assert!(attr(&root, "call.setup_ms").is_some());
        assert_eq!(attr(&root, "call.candidates").as_deref(), Some("2"));
        assert_eq!(attr(&root, "call.candidate_types").as_deref(), Some("host,relay"));
        assert!(root.parent_span_id.is_empty(), "the call span is the root");
        let report = root.events.iter().find(|e| e.name == "call.report").expect("the link report is an event");
        assert!(report.attributes.iter().any(|a| a.key == "rttMs"));
        for name in ["call.answered", "call.offer", "call.answer", "call.ended"] {
            let child = trace.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} in {:?}", trace.iter().map(|s| &s.name).collect::<Vec<_>>()));
            assert_eq!(child.parent_span_id, root.span_id, "{name} is a child of the call span");
        }
        assert!(trace.iter().all(|s| s.name != "call.candidate"), "candidates are counted, not spans");
        // Nothing else of this call in another trace.
        let elsewhere = spans.lock().unwrap().iter().filter(|s| s.trace_id != root.trace_id && attr(s, "call.id").as_deref() == Some(id.as_str())).count();
        assert_eq!(elsewhere, 0);
        // The record carries the failure class too.
        let mut c = server.client();
        c.token = Some(at);
        assert_eq!(c.get(&format!("/api/calls/{id}")).await.body["failureClass"], "ok");
    }

    #[tokio::test]
    async fn a_call_whose_session_was_killed_is_still_one_trace() {
        let (endpoint, spans) = receiver().await;
        let server = Server::start_with(&[("DUET_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100"), ("DUET_ADMIN_TOKEN", ADMIN_TOKEN)]);
        let (_, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let (id, mut aw, mut bw) = call_with_signaling(&server, &at, (bob, &bt)).await;
        assert_eq!(server.kill_actor(&format!("call:{id}")).await, 202);
        server.wait_actors("the session restarted", |l| l.iter().any(|a| a["name"] == format!("call:{id}") && a["restarts"] == 1)).await;
        ok(&aw.request(json!({"method": "Message/Offer", "toId": bob, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "after"}}}), 20).await);
        bw.wait_for(10010).await;
        ok(&aw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 21).await);
        bw.wait_for(10016).await;
        let (root, trace) = trace_of(&spans, &id).await;
        assert!(root.events.iter().any(|e| e.name == "actor.restart"), "the restart is an event on the call span");
        assert_eq!(trace.iter().filter(|s| s.name == "call.offer").count(), 2, "offers before and after the restart, in one trace");
        assert_eq!(attr(&root, "call.status").as_deref(), Some("completed"));
    }

    #[tokio::test]
    async fn metrics_are_valid_prometheus_and_move_with_calls() {
        let server = Server::start();
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let before = metrics(&server).await;
        assert_eq!(sample(&before, "duet_calls_started_total", &[]), 0.0);

        let (id, mut aw, mut bw) = call_with_signaling(&server, &at, (bob, &bt)).await;
        let during = metrics(&server).await;
        assert_eq!(sample(&during, "duet_online_users", &[]), 2.0);
        assert_eq!(sample(&during, "duet_open_connections", &[]), 2.0);
        assert_eq!(sample(&during, "duet_calls_live", &[("state", "active")]), 1.0);
        assert_eq!(sample(&during, "duet_calls_started_total", &[]), 1.0);
        assert_eq!(sample(&during, "duet_frames_relayed_total", &[("kind", "offer")]), 1.0);
        assert_eq!(sample(&during, "duet_frames_relayed_total", &[("kind", "candidate")]), 2.0);
        assert_eq!(sample(&during, "duet_call_setup_seconds_count", &[]), 1.0);
        aw.send(json!({"method": "Nope"})).await;
        aw.wait_for(10003).await;
        let stats = json!({"iceState": "failed", "localCandidateType": "relay", "remoteCandidateType": "host"});
        ok(&bw.request(json!({"method": "Call/Report", "data": {"callId": id, "stats": stats}}), 7).await);
        ok(&aw.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 8).await);
        bw.wait_for(10016).await;

        let after = metrics(&server).await;
        assert_eq!(sample(&after, "duet_calls_live", &[("state", "active")]), 0.0);
        assert_eq!(sample(&after, "duet_calls_ended_total", &[("status", "completed")]), 1.0);
        assert_eq!(sample(&after, "duet_call_duration_seconds_count", &[]), 1.0);
        assert_eq!(sample(&after, "duet_ws_errors_total", &[("error", "unknown_method")]), 1.0);
        assert_eq!(sample(&after, "duet_ice_failures_total", &[]), 1.0);
        assert_eq!(sample(&after, "duet_call_reports_total", &[("relayed", "true")]), 1.0);
        assert!(sample(&after, "duet_http_requests_total", &[("route", "/api/login"), ("status", "200")]) >= 2.0);
        assert!(after.contains("duet_turn_allocations"));
        // Bob's ICE failed without his ever allocating on the relay: the call is classed so.
        let mut c = server.client();
        c.token = Some(at.clone());
        assert_eq!(c.get(&format!("/api/calls/{id}")).await.body["failureClass"], "ice_failed_no_relay");
        let _ = alice;

        // Prometheus's own checker agrees with the format.
        match std::process::Command::new("promtool").args(["check", "metrics"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn() {
            Ok(mut child) => {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(after.as_bytes()).unwrap();
                let out = child.wait_with_output().unwrap();
                let problems = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(out.status.success(), "promtool check metrics: {problems}");
            }
            Err(_) => eprintln!("SKIPPED: promtool is not installed (Debian package prometheus; .ci/run installs it)"),
        }
    }
}
