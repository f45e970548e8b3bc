//! A bounded single-core queue that a consumer drains in batches: the
//! broadcast core takes everything that arrived since its last batch in one
//! go. Producers wait while it is full, which carries backpressure back
//! through the cross-core channels to the shards.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

pub struct BatchQueue<T> {
    items: RefCell<VecDeque<T>>,
    capacity: usize,
    consumer: Cell<Option<Waker>>,
    producers: RefCell<Vec<Waker>>,
}

impl<T> BatchQueue<T> {
    pub fn new(capacity: usize) -> Self {
        BatchQueue {
            items: RefCell::new(VecDeque::with_capacity(capacity)),
            capacity,
            consumer: Cell::new(None),
            producers: RefCell::new(Vec::new()),
        }
    }

    pub async fn push(&self, item: T) {
        let mut item = Some(item);
        poll_fn(|context| {
            let mut items = self.items.borrow_mut();
            if items.len() < self.capacity {
                if let Some(item) = item.take() {
                    items.push_back(item);
                }
                debug_assert!(items.len() <= self.capacity, "a batch queue over its bound");
                if let Some(waker) = self.consumer.take() {
                    waker.wake();
                }
                Poll::Ready(())
            } else {
                self.producers.borrow_mut().push(context.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until at least one item is queued.
    pub async fn ready(&self) {
        poll_fn(|context| {
            if self.items.borrow().is_empty() {
                self.consumer.set(Some(context.waker().clone()));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Takes up to `max` items without waiting.
    pub fn drain(&self, max: usize, into: &mut Vec<T>) {
        let mut items = self.items.borrow_mut();
        let count = items.len().min(max);
        let before = into.len();
        into.extend(items.drain(..count));
        debug_assert!(into.len() - before <= max, "a batch over its bound");
        drop(items);
        for waker in self.producers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }
}
