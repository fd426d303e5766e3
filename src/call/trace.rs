//! One OpenTelemetry trace per call. The root span `call` opens at the invite and closes at the
//! end; each transition and each forwarded offer or answer is a child span; candidates are
//! counted on the root (with the candidate types seen) rather than one span each; link reports
//! and actor restarts are events. The context lives outside the session actor (with the call
//! supervisor), so a restarted session goes on in the same trace; its `traceparent` is stored
//! with the call, so a restarted server does too.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer};
use opentelemetry::{Context, KeyValue, global};

use super::machine::CallState;

#[derive(Clone)]
pub struct CallTrace {
    cx: Context,
    candidates: Arc<Mutex<(u64, BTreeSet<String>)>>,
}

fn tracer() -> global::BoxedTracer {
    global::tracer("duet")
}

impl CallTrace {
    /// Opens the root span of a new call, or, with `parent` (a stored `traceparent`), a
    /// continuation of the call's trace after a server restart.
    pub fn open(call: &CallState, parent: Option<&str>) -> CallTrace {
        let t = tracer();
        let mut builder = t
            .span_builder("call")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("call.id", call.id.clone()),
                KeyValue::new("call.caller", call.caller.user.id),
                KeyValue::new("call.callee", call.callee.user.id),
                KeyValue::new("call.media.audio", call.media.audio),
                KeyValue::new("call.media.video", call.media.video),
            ]);
        let parent_cx = parent.and_then(parse_traceparent).map(|sc| Context::new().with_remote_span_context(sc));
        if parent_cx.is_some() {
            builder = builder.with_attributes(vec![KeyValue::new("call.restored", true)]);
        }
        let span = match &parent_cx {
            Some(p) => builder.start_with_context(&t, p),
            None => builder.start(&t),
        };
        CallTrace { cx: Context::new().with_span(span), candidates: Arc::default() }
    }

    /// `traceparent` of the root span, to store with the call.
    pub fn traceparent(&self) -> Option<String> {
        let sc = self.cx.span().span_context().clone();
        sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
    }

    /// A child span for something that happened at once (a transition, a forwarded offer).
    pub fn child(&self, name: &'static str, attrs: Vec<KeyValue>) {
        let t = tracer();
        let mut span = t.span_builder(name).with_attributes(attrs).start_with_context(&t, &self.cx);
        span.end();
    }

    pub fn event(&self, name: &'static str, attrs: Vec<KeyValue>) {
        self.cx.span().add_event(name, attrs);
    }

    /// Counts a forwarded candidate and the type it names (`host`, `srflx`, `relay`, ...).
    pub fn candidate(&self, data: Option<&crate::protocol::RawData>) {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            #[serde(borrow, default)]
            candidate: Option<Inner<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow, default)]
            candidate: Option<std::borrow::Cow<'a, str>>,
        }
        let parsed = data.and_then(|d| serde_json::from_str::<Line<'_>>(d.get()).ok());
        let line = parsed.as_ref().and_then(|l| l.candidate.as_ref()).and_then(|c| c.candidate.as_deref()).unwrap_or("");
        let kind = line.split_whitespace().skip_while(|w| *w != "typ").nth(1).unwrap_or("unknown").to_string();
        let mut c = self.candidates.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += 1;
        c.1.insert(kind);
    }

    /// Closes the root span with the call's outcome; an unhappy outcome marks it an error.
    pub fn close(&self, attrs: Vec<KeyValue>, error: Option<String>) {
        let span = self.cx.span();
        let (count, kinds) = self.candidates.lock().unwrap_or_else(|p| p.into_inner()).clone();
        span.set_attribute(KeyValue::new("call.candidates", i64::try_from(count).unwrap_or(i64::MAX)));
        span.set_attribute(KeyValue::new("call.candidate_types", kinds.into_iter().collect::<Vec<_>>().join(",")));
        for kv in attrs {
            span.set_attribute(kv);
        }
        if let Some(message) = error {
            span.set_status(Status::error(message));
        }
        span.end();
    }

    /// Ends the root span because the server stops; the next start continues the trace.
    pub fn suspend(&self) {
        self.event("server.shutdown", Vec::new());
        self.cx.span().end();
    }
}

fn parse_traceparent(tp: &str) -> Option<SpanContext> {
    let mut parts = tp.split('-');
    let (_version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::default());
    sc.is_valid().then_some(sc)
}
