//! A connection's outgoing bytes. Replies and watch events from anywhere on
//! the shard append to one buffer; the connection's writer task swaps the
//! whole buffer out and writes it with one syscall, so a burst of replies
//! costs one write.
//!
//! Two ways to end: `close` lets what is queued be written first (a reply
//! to closeSession, a four-letter word's answer); `abort` drops it and makes
//! the writer give up a write in progress, for a client that does not read
//! (over the outgoing bound) or whose session expired. A write to a client
//! that never reads would otherwise wait for ever, holding the connection
//! and everything queued for it.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Instant;

use super::close::CloseReason;

#[derive(Default)]
pub struct Outbox {
    buffer: RefCell<Vec<u8>>,
    writer: Cell<Option<Waker>>,
    /// Woken when the buffer drains below the backpressure bound, or on close.
    reader: Cell<Option<Waker>>,
    closing: Cell<bool>,
    close_reason: RefCell<Option<CloseReason>>,
    /// Set by `abort`: nothing more is written.
    aborted: Cell<bool>,
    /// Woken on abort: the writer, while a write is in progress.
    abort_waiter: Cell<Option<Waker>>,
    /// Bytes the writer took and has not finished writing: they count
    /// against the connection's bounds as much as the queued ones.
    in_flight: Cell<usize>,
    /// When the oldest bytes in `buffer` were queued, and when those of the
    /// write in progress were (the `socket_write` write stage).
    queued_at: Cell<Option<Instant>>,
    writing_since: Cell<Option<Instant>>,
}

impl Outbox {
    pub fn push(&self, append: impl FnOnce(&mut Vec<u8>)) {
        if self.closing.get() {
            return;
        }
        let mut buffer = self.buffer.borrow_mut();
        if buffer.is_empty() {
            self.queued_at.set(Some(Instant::now()));
        }
        append(&mut buffer);
        drop(buffer);
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    /// Bytes queued or being written.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.borrow().len() + self.in_flight.get()
    }

    /// Memory the outgoing buffer holds (its capacity) plus the write in
    /// progress.
    pub fn held_bytes(&self) -> usize {
        self.buffer.borrow().capacity() + self.in_flight.get()
    }

    /// When the bytes just written were first queued (taken once).
    pub fn take_writing_since(&self) -> Option<Instant> {
        self.writing_since.take()
    }

    /// The writer says how much it is writing (0 when done).
    pub fn set_in_flight(&self, bytes: usize) {
        self.in_flight.set(bytes);
    }

    /// Closes at once: what is queued is dropped, and a write in progress is
    /// given up (see the module essay).
    pub fn abort(&self, reason: CloseReason) {
        self.close(reason);
        self.aborted.set(true);
        *self.buffer.borrow_mut() = Vec::new();
        if let Some(waker) = self.abort_waiter.take() {
            waker.wake();
        }
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.get()
    }

    /// Resolves when the connection is aborted.
    pub async fn aborted(&self) {
        poll_fn(|context| {
            if self.aborted.get() {
                Poll::Ready(())
            } else {
                self.abort_waiter.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Asks for the connection to close once what is queued is written.
    pub fn close(&self, reason: CloseReason) {
        if !self.closing.replace(true) {
            *self.close_reason.borrow_mut() = Some(reason);
        }
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Why the connection was asked to close, the first reason given.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.borrow().clone()
    }

    /// The next bytes to write, swapped against `spare` (which comes back
    /// empty for reuse); None once closing and drained.
    pub async fn next(&self, spare: Vec<u8>) -> Option<Vec<u8>> {
        let mut spare = Some(spare);
        poll_fn(|context| {
            if self.aborted.get() {
                return Poll::Ready(None);
            }
            let mut buffer = self.buffer.borrow_mut();
            if !buffer.is_empty() {
                let mut out = spare.take().unwrap_or_default();
                out.clear();
                std::mem::swap(&mut *buffer, &mut out);
                self.writing_since.set(self.queued_at.take());
                if let Some(waker) = self.reader.take() {
                    waker.wake();
                }
                return Poll::Ready(Some(out));
            }
            if self.closing.get() {
                return Poll::Ready(None);
            }
            self.writer.set(Some(context.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// Waits until fewer than `bound` bytes are queued (or the connection
    /// is closing), so a client that does not read stops being read.
    pub async fn wait_below(&self, bound: usize) {
        poll_fn(|context| {
            if self.buffer.borrow().len() < bound || self.closing.get() {
                Poll::Ready(())
            } else {
                self.reader.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when the connection starts closing.
    pub async fn closed(&self) {
        poll_fn(|context| {
            if self.closing.get() {
                Poll::Ready(())
            } else {
                self.reader.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
