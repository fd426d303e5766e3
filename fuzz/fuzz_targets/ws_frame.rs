//! A WebSocket text frame from a client, through everything the reader does before a handler
//! sees it: the decode, the envelope checks (`fromId`) and the method's own checks. Whatever the
//! bytes, the answer is a method or a 10003 with one of the protocol's error names, and that
//! 10003 is itself a well-formed frame.
#![no_main]

use duet::protocol::{ClientFrame, ServerFrame, envelope};
use libfuzzer_sys::fuzz_target;

const USER: i64 = 7;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, seq, error) = match ClientFrame::decode(text) {
        Err(refused) => {
            assert!(matches!(refused.error.name(), "bad_json" | "missing_field"), "decode refused with {:?}", refused.error);
            (refused.method, refused.seq, refused.error)
        }
        Ok(frame) => {
            assert!(!frame.method.is_empty());
            let _ = frame.data_call_id();
            match envelope(&frame, USER) {
                Ok(m) => {
                    assert_eq!(m.name(), frame.method, "a method is parsed under its own name");
                    return;
                }
                Err(e) => (Some(frame.method.clone()), frame.seq, e),
            }
        }
    };
    let name = error.name();
    let refusal = ServerFrame::error(method.as_deref(), seq, error).to_text();
    let v: serde_json::Value = serde_json::from_str(refusal.as_str()).expect("a 10003 is JSON");
    assert_eq!(v["code"], 10003);
    assert_eq!(v["data"]["error"], name);
    assert_eq!(v["data"]["seq"], serde_json::json!(seq));
});
