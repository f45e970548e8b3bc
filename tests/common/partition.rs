//! A network between ensemble members that a test can partition.
//!
//! Member `m`'s zoo.cfg names member `n` at 127.77.m.n (same ports), where
//! a proxy listens and forwards to 127.0.0.1, where `n` listens (see
//! `Cluster::start_routed`). Each link is then one proxy listener, so a
//! test can cut exactly the links of one member while that member keeps
//! running and keeps its clients: the partition a leader meets when its
//! switch port dies, which neither SIGKILL nor SIGSTOP shows.
//!
//! A cut link is a black hole, not a reset: bytes stop moving both ways and
//! new connections are accepted and then ignored, as when packets are
//! dropped; each side finds out by its own timeouts. When the partition
//! heals the held connections are closed (TCP would have given up on them
//! by then) and new ones flow again.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bytes moved per read by a link's pump.
const PUMP_BUFFER_BYTES: usize = 64 * 1024;

/// The host member `member` dials member `peer` at (0-based indexes).
pub fn route(member: usize, peer: usize) -> String {
    format!("127.77.{}.{}", member + 1, peer + 1)
}

/// The proxies of a whole ensemble, on a runtime of their own so that they
/// keep forwarding while the test blocks.
pub struct Network {
    runtime: tokio::runtime::Runtime,
    /// The members whose links are cut.
    cut: Arc<watch::Sender<BTreeSet<usize>>>,
}

impl Network {
    /// Starts one proxy per ordered pair of members and per port (quorum
    /// and election) of the dialled member.
    pub fn start(peer_ports: &[(u16, u16)]) -> Network {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the network");
        let (cut, _) = watch::channel(BTreeSet::new());
        let cut = Arc::new(cut);
        for member in 0..peer_ports.len() {
            for (peer, &(quorum, election)) in peer_ports.iter().enumerate() {
                if member == peer {
                    continue;
                }
                for port in [quorum, election] {
                    let listen = format!("{}:{port}", route(member, peer));
                    let listener = runtime
                        .block_on(TcpListener::bind(&listen))
                        .unwrap_or_else(|error| panic!("proxy on {listen}: {error}"));
                    let target = format!("{}:{port}", super::LOOPBACK);
                    runtime.spawn(accept(listener, target, [member, peer], cut.clone()));
                }
            }
        }
        Network { runtime, cut }
    }

    /// Cuts every link of `member`: it keeps running and serving its
    /// clients but hears from no other member.
    pub fn isolate(&self, member: usize) {
        self.cut.send_modify(|cut| {
            cut.insert(member);
        });
    }

    /// Lets every link carry bytes again.
    pub fn heal(&self) {
        self.cut.send_modify(BTreeSet::clear);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Held links close before the runtime that holds them goes.
        self.heal();
    }
}

fn is_cut(cut: &BTreeSet<usize>, ends: [usize; 2]) -> bool {
    ends.iter().any(|end| cut.contains(end))
}

async fn accept(listener: TcpListener, target: String, ends: [usize; 2], cut: Arc<watch::Sender<BTreeSet<usize>>>) {
    while let Ok((inbound, _)) = listener.accept().await {
        tokio::spawn(carry(inbound, target.clone(), ends, cut.subscribe()));
    }
}

/// One link: held while either end is cut (then closed once that changes),
/// otherwise connected to the member and pumped both ways until either
/// side closes or the link is cut.
async fn carry(inbound: TcpStream, target: String, ends: [usize; 2], mut cut: watch::Receiver<BTreeSet<usize>>) {
    if is_cut(&cut.borrow_and_update(), ends) {
        let _ = cut.changed().await;
        return;
    }
    let Ok(outbound) = TcpStream::connect(&target).await else { return };
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    let mut forward = cut.clone();
    let mut backward = cut.clone();
    tokio::select! {
        _ = pump(inbound_read, outbound_write, ends, &mut forward) => {}
        _ = pump(outbound_read, inbound_write, ends, &mut backward) => {}
    }
}

/// Copies `from` to `to` until either closes; once the link is cut it stops
/// reading (the sender's data piles up unacknowledged, as in a partition)
/// and returns when the cut changes, closing the link.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    ends: [usize; 2],
    cut: &mut watch::Receiver<BTreeSet<usize>>,
) {
    let mut buffer = vec![0u8; PUMP_BUFFER_BYTES];
    loop {
        if is_cut(&cut.borrow_and_update(), ends) {
            let _ = cut.changed().await;
            return;
        }
        tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(count) => {
                    if to.write_all(&buffer[..count]).await.is_err() {
                        return;
                    }
                }
            },
            changed = cut.changed() => if changed.is_err() { return },
        }
    }
}
