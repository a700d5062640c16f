//! The reactor's executor: `spawn` runs `!Send` futures on the reactor thread.
//!
//! Tasks live in slots on the reactor; a task's `Waker` (created once per task)
//! pushes its slot and generation onto a mutex-protected ready list and wakes the
//! backend (coalesced), so wakes may come from any thread. Each pass polls the
//! tasks that were ready when the step began; a task woken while it runs is
//! polled again on the next pass, so a busy task cannot starve I/O.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::threads::lock;
use crate::sys::waker::Waker as BackendWaker;

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

pub(crate) struct ReadyList {
    ids: Mutex<Vec<(usize, u32)>>,
    any: AtomicBool,
    backend: Arc<BackendWaker>,
}

impl ReadyList {
    pub(crate) fn new(backend: Arc<BackendWaker>) -> ReadyList {
        ReadyList { ids: Mutex::new(Vec::new()), any: AtomicBool::new(false), backend }
    }

    fn push(&self, slot: usize, generation: u32) {
        lock(&self.ids).push((slot, generation));
        self.any.store(true, Ordering::Release);
        self.backend.wake_for_queued();
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }
}

struct TaskWaker {
    slot: usize,
    generation: u32,
    ready: Arc<ReadyList>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.push(self.slot, self.generation);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.slot, self.generation);
    }
}

struct Slot {
    generation: u32,
    future: Option<TaskFuture>,
    waker: Option<Waker>,
    /// Being polled right now (its future is out of the slot).
    running: bool,
    /// Cancelled while running: drop the future when the poll returns.
    cancel_after_poll: bool,
}

/// The spawned tasks of one reactor.
#[derive(Default)]
pub(crate) struct Tasks {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

/// Identifies a spawned task (slot and generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId(usize, u32);

impl Tasks {
    pub(crate) fn insert(&mut self, future: TaskFuture, ready: &Arc<ReadyList>) -> TaskId {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    future: None,
                    waker: None,
                    running: false,
                    cancel_after_poll: false,
                });
                self.slots.len() - 1
            }
        };
        let entry = &mut self.slots[slot];
        entry.future = Some(future);
        entry.running = false;
        entry.cancel_after_poll = false;
        let generation = entry.generation;
        entry.waker = Some(Waker::from(Arc::new(TaskWaker { slot, generation, ready: Arc::clone(ready) })));
        ready.push(slot, generation);
        TaskId(slot, generation)
    }

    /// Takes a task's future out to poll it; `None` if the id is stale or done.
    /// A task that is being polled right now (a nested pass from inside its poll)
    /// is woken again, so the wake-up is not lost.
    fn take(&mut self, slot: usize, generation: u32, ready: &ReadyList) -> Option<(TaskFuture, Waker)> {
        let entry = self.slots.get_mut(slot)?;
        if entry.generation != generation {
            return None;
        }
        if entry.running {
            ready.push(slot, generation);
            return None;
        }
        let future = entry.future.take()?;
        entry.running = true;
        Some((future, entry.waker.clone()?))
    }

    /// Puts a pending future back; returns it instead if it was cancelled meanwhile.
    fn put_back(&mut self, slot: usize, future: TaskFuture) -> Option<TaskFuture> {
        let entry = &mut self.slots[slot];
        entry.running = false;
        if entry.cancel_after_poll {
            self.release(slot);
            return Some(future);
        }
        entry.future = Some(future);
        None
    }

    fn release(&mut self, slot: usize) {
        let entry = &mut self.slots[slot];
        entry.generation = entry.generation.wrapping_add(1);
        entry.future = None;
        entry.waker = None;
        entry.running = false;
        entry.cancel_after_poll = false;
        self.free.push(slot);
    }

    /// Cancels a task: returns its future to drop (outside the borrow).
    pub(crate) fn cancel(&mut self, id: TaskId) -> Option<TaskFuture> {
        let entry = self.slots.get_mut(id.0)?;
        if entry.generation != id.1 {
            return None;
        }
        if entry.running {
            entry.cancel_after_poll = true;
            return None;
        }
        let future = entry.future.take();
        self.release(id.0);
        future
    }

    /// How many tasks are alive.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Drops every task (reactor teardown).
    pub(crate) fn drain(&mut self) -> Vec<TaskFuture> {
        let mut futures = Vec::new();
        for slot in 0..self.slots.len() {
            if let Some(f) = self.slots[slot].future.take() {
                futures.push(f);
                self.release(slot);
            }
        }
        futures
    }
}

/// Polls every task that was ready when called.
pub(crate) fn run_ready(tasks: &RefCell<Tasks>, ready: &ReadyList) {
    if !ready.has_ready() {
        return;
    }
    let batch = {
        let mut ids = lock(&ready.ids);
        ready.any.store(false, Ordering::Release);
        std::mem::take(&mut *ids)
    };
    for (slot, generation) in batch {
        let taken = tasks.borrow_mut().take(slot, generation, ready);
        let Some((mut future, waker)) = taken else { continue };
        let mut cx = Context::from_waker(&waker);
        let done =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Ready(())) => true,
                Ok(Poll::Pending) => false,
                Err(payload) => {
                    tracing::error!(panic = %super::panic_message(&*payload), "a spawned task panicked");
                    true
                }
            };
        if done {
            tasks.borrow_mut().release(slot);
            drop(future);
        } else {
            let cancelled = tasks.borrow_mut().put_back(slot, future);
            drop(cancelled);
        }
    }
}
