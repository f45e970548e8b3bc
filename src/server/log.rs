//! Where the broadcast core puts each batch before it replies. Today the log
//! lives in memory: entries are checked for order and the tree holds the state, so a
//! restart starts empty. The durable raft log (issue 3) takes this place:
//! `append` then becomes a buffered record write and `sync` the one write
//! plus fdatasync per batch that group commit needs, and the pipeline
//! around it stays as it is.

use crate::tree::{Txn, TxnHeader};

pub struct Log {
    last_zxid: i64,
}

impl Log {
    pub fn in_memory() -> Log {
        Log { last_zxid: 0 }
    }

    pub fn append(&mut self, header: &TxnHeader, _txn: &Txn) {
        debug_assert!(header.zxid > self.last_zxid, "zxids are appended in order");
        self.last_zxid = header.zxid;
    }

    /// Resolves when everything appended is durable.
    pub async fn sync(&mut self) {}
}
