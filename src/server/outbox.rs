//! A connection's outgoing bytes. Replies and watch events from anywhere on
//! the shard append to one buffer; the connection's writer task swaps the
//! whole buffer out and writes it with one syscall, so a burst of replies
//! costs one write.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Outbox {
    buffer: RefCell<Vec<u8>>,
    writer: Cell<Option<Waker>>,
    /// Woken when the buffer drains below the backpressure bound, or on close.
    reader: Cell<Option<Waker>>,
    closing: Cell<bool>,
    close_reason: Cell<Option<&'static str>>,
}

impl Outbox {
    pub fn push(&self, append: impl FnOnce(&mut Vec<u8>)) {
        if self.closing.get() {
            return;
        }
        append(&mut self.buffer.borrow_mut());
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    pub fn pending_bytes(&self) -> usize {
        self.buffer.borrow().len()
    }

    /// Asks for the connection to close once what is queued is written.
    pub fn close(&self, reason: &'static str) {
        if !self.closing.replace(true) {
            self.close_reason.set(Some(reason));
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

    pub fn close_reason(&self) -> Option<&'static str> {
        self.close_reason.get()
    }

    /// The next bytes to write, swapped against `spare` (which comes back
    /// empty for reuse); None once closing and drained.
    pub async fn next(&self, spare: Vec<u8>) -> Option<Vec<u8>> {
        let mut spare = Some(spare);
        poll_fn(|context| {
            let mut buffer = self.buffer.borrow_mut();
            if !buffer.is_empty() {
                let mut out = spare.take().unwrap_or_default();
                out.clear();
                std::mem::swap(&mut *buffer, &mut out);
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
