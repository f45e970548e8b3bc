//! The codec against bytes recorded from real clients (kazoo, the Java
//! client and zkCli, the C client) talking to the real Apache ZooKeeper 3.8
//! (tests/fixtures/wire/README.md says how they were recorded).
//!
//! Every client frame must decode completely; every server frame must decode
//! completely and, re-encoded by zoocore, give back the same bytes ZooKeeper
//! sent, which is what makes zoocore's replies byte-compatible.

use std::collections::HashMap;
use std::path::Path;

use zoocore::proto::codes::{op, xid};
use zoocore::proto::response::write_reply;
use zoocore::proto::{ConnectRequest, ConnectResponse, Reader, ReplyHeader, Request, Response, WatcherEvent, Writer};

struct Frame {
    from_client: bool,
    bytes: Vec<u8>,
    line: usize,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// Splits a fixture file into connections of frames.
fn connections(path: &Path) -> Vec<Vec<Frame>> {
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut connections: Vec<Vec<Frame>> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("# === connection") {
            connections.push(Vec::new());
        } else if let Some(rest) = line.strip_prefix("C ").or_else(|| line.strip_prefix("S ")) {
            if connections.is_empty() {
                connections.push(Vec::new());
            }
            let from_client = line.starts_with('C');
            connections.last_mut().unwrap().push(Frame { from_client, bytes: hex(rest.trim()), line: index + 1 });
        }
    }
    connections
}

/// A null buffer or vector (length -1) reads back as empty, so a frame
/// holding one cannot be reproduced byte for byte; everything else must be.
fn has_null_length(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|window| window == [0xff, 0xff, 0xff, 0xff])
}

#[derive(Default)]
struct Counts {
    requests: usize,
    replies: usize,
    byte_exact_replies: usize,
    events: usize,
}

fn check_connection(file: &str, frames: &[Frame], counts: &mut Counts) {
    let mut opcodes: HashMap<i32, i32> = HashMap::new();
    let mut connected = false;
    let mut handshake_answered = false;
    for frame in frames {
        let place = format!("{file}:{}", frame.line);
        if frame.from_client {
            if !connected {
                let request = ConnectRequest::decode(&frame.bytes).unwrap_or_else(|e| panic!("{place}: {e}"));
                let mut out = Vec::new();
                request.encode(&mut Writer::new(&mut out));
                assert_eq!(out, frame.bytes, "{place}: connect request re-encodes");
                connected = true;
                continue;
            }
            let (header, request) = Request::decode(&frame.bytes);
            let header = header.unwrap_or_else(|| panic!("{place}: request header"));
            let request = match request {
                Ok(request) => request,
                Err(error) => panic!("{place}: opcode {} does not decode: {error}", header.opcode),
            };
            opcodes.insert(header.xid, header.opcode);
            let mut out = Vec::new();
            request.encode(header.xid, &mut Writer::new(&mut out));
            if !has_null_length(&frame.bytes) {
                assert_eq!(out, frame.bytes, "{place}: request re-encodes byte for byte");
            }
            assert_eq!(Request::decode(&out).1.unwrap(), request, "{place}: request round trip");
            counts.requests += 1;
        } else {
            if !handshake_answered {
                let response = ConnectResponse::decode(&frame.bytes).unwrap_or_else(|e| panic!("{place}: {e}"));
                let mut out = Vec::new();
                response.encode(&mut Writer::new(&mut out));
                assert_eq!(out, frame.bytes, "{place}: connect response re-encodes");
                handshake_answered = true;
                continue;
            }
            let mut reader = Reader::new(&frame.bytes);
            let header = ReplyHeader::decode(&mut reader).unwrap_or_else(|e| panic!("{place}: {e}"));
            if header.xid == xid::NOTIFICATION {
                let event = WatcherEvent::decode(&mut reader).unwrap_or_else(|e| panic!("{place}: {e}"));
                assert!(reader.is_empty(), "{place}: trailing bytes after the event");
                let mut out = Vec::new();
                zoocore::proto::response::write_event(&mut out, &event);
                assert_eq!(&out[4..], &frame.bytes[..], "{place}: event re-encodes");
                counts.events += 1;
                continue;
            }
            let Some(&opcode) = opcodes.get(&header.xid) else {
                continue; // a reply to a request this connection never sent
            };
            // Errors carry a body only for multi (the results) and sasl (a
            // null token).
            let has_body = header.err == 0 || opcode == op::MULTI || opcode == op::MULTI_READ || opcode == op::SASL;
            let response = if has_body && !reader.is_empty() {
                Response::decode(opcode, &mut reader).unwrap_or_else(|e| panic!("{place}: opcode {opcode}: {e}"))
            } else {
                Response::Empty
            };
            assert!(reader.is_empty(), "{place}: opcode {opcode} reply has {} bytes left", reader.remaining());
            let mut out = Vec::new();
            write_reply(&mut out, header, &response);
            if !has_null_length(&frame.bytes[16..]) {
                assert_eq!(&out[4..], &frame.bytes[..], "{place}: opcode {opcode} reply re-encodes byte for byte");
                counts.byte_exact_replies += 1;
            }
            counts.replies += 1;
        }
    }
}

#[test]
fn recorded_frames_decode_and_replies_reencode_byte_for_byte() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire");
    let mut counts = Counts::default();
    let mut files = 0;
    for entry in std::fs::read_dir(&directory).expect("fixtures directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".txt") || name == "fourletter.txt" {
            continue;
        }
        files += 1;
        for frames in connections(&path) {
            check_connection(&name, &frames, &mut counts);
        }
    }
    assert!(files >= 8, "expected the recorded fixture files, found {files}");
    assert!(counts.requests > 200, "requests checked: {}", counts.requests);
    assert!(counts.byte_exact_replies > 200, "replies checked byte for byte: {}", counts.byte_exact_replies);
    assert!(counts.events > 5, "events checked: {}", counts.events);
    eprintln!(
        "checked {} requests, {} replies ({} byte for byte), {} events",
        counts.requests, counts.replies, counts.byte_exact_replies, counts.events
    );
}
