//! SIGTERM and SIGINT stop the server cleanly and promptly, with status 0.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A clean stop must be well within this.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

async fn stops_cleanly_on(signal: i32, name: &str) {
    if skip_if_external(name, "signals a spawned server") {
        return;
    }
    let mut server = Server::start_with(&["zoocore.shards=2"]);
    let client = connect(server.addr()).await;
    let path = unique("stop");
    client.create(&path, b"x", &persistent()).await.unwrap();
    // Writes in flight while the signal arrives: none may hang the stop.
    let writes: Vec<_> = (0..50)
        .map(|index| {
            let client = client.clone();
            let path = format!("{path}-{index}");
            tokio::spawn(async move { client.create(&path, b"", &persistent()).await.map(|_| ()) })
        })
        .collect();
    let started = Instant::now();
    let status = server.signal_and_wait(signal, STOP_DEADLINE);
    let took = started.elapsed();
    let status = status.unwrap_or_else(|| panic!("no exit within {STOP_DEADLINE:?}\n{}", server.stderr_tail()));
    assert!(status.success(), "exit status {status:?}\n{}", server.stderr_tail());
    // The client may retry what it did not hear back about; it is not waited for.
    for write in writes {
        write.abort();
    }
    let log = server.stderr_tail();
    assert!(log.contains("zoocore stopping"), "{log}");
    assert!(log.contains("zoocore stopped"), "{log}");
    eprintln!("{name}: stopped in {took:?}");
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    stops_cleanly_on(libc::SIGTERM, "sigterm_stops_cleanly").await;
}

#[tokio::test]
async fn sigint_stops_cleanly() {
    stops_cleanly_on(libc::SIGINT, "sigint_stops_cleanly").await;
}
