//! System event triggers (Twisted's `addSystemEventTrigger` / `fireSystemEvent`).
//!
//! Each event has three phases, before → during → after, FIFO within a phase. A
//! trigger runs once: firing pops it, so a trigger removed by an earlier trigger of the
//! same firing never runs, and one added to a phase not yet finished runs in this
//! firing. Startup and shutdown are events like any other; the reactor hooks its own
//! work in at the start of their `during` phase.

use std::collections::VecDeque;
use std::fmt;

use super::Reactor;

/// The phase of a system event a trigger runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the event happens.
    Before,
    /// As the event happens.
    During,
    /// After the event has happened.
    After,
}

/// A system event: `Startup`, `Shutdown`, or any name a program fires itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SystemEvent {
    /// Fired by `run()` before the loop starts.
    Startup,
    /// Fired on the pass after `stop()`.
    Shutdown,
    /// A program-defined event, fired with [`Reactor::fire_system_event`].
    Named(String),
}

impl From<&str> for SystemEvent {
    fn from(name: &str) -> SystemEvent {
        match name {
            "startup" => SystemEvent::Startup,
            "shutdown" => SystemEvent::Shutdown,
            other => SystemEvent::Named(other.to_owned()),
        }
    }
}

impl fmt::Display for SystemEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemEvent::Startup => f.write_str("startup"),
            SystemEvent::Shutdown => f.write_str("shutdown"),
            SystemEvent::Named(name) => f.write_str(name),
        }
    }
}

/// Identifies a registered trigger, for [`Reactor::remove_system_event_trigger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TriggerId(u64);

/// What a trigger reports when it finishes.
pub enum TriggerOutcome {
    /// It did its work.
    Done,
    /// It failed; the reactor logs the message and runs the remaining triggers.
    Failed(String),
    /// Its work finishes later (it returned a Deferred): a before-phase trigger
    /// holds the next phases back until then, while the loop goes on serving.
    Pending(PendingTrigger),
}

impl fmt::Debug for TriggerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TriggerOutcome::Done => f.write_str("Done"),
            TriggerOutcome::Failed(msg) => f.debug_tuple("Failed").field(msg).finish(),
            TriggerOutcome::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// Work a trigger finishes later: given a completion callback, it arranges to
/// call it exactly once with the outcome.
pub struct PendingTrigger(pub Box<dyn FnOnce(TriggerDone)>);

impl fmt::Debug for PendingTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingTrigger")
    }
}

/// The completion callback a [`PendingTrigger`] is given: call it once with the
/// outcome (`Err` carries the failure's message).
pub type TriggerDone = Box<dyn FnOnce(Result<(), String>)>;

/// Return types a trigger closure may have: `()`, `Result<(), E>` for any
/// displayable `E`, or a `Deferred` (which a before-phase waits for).
pub trait IntoTriggerOutcome {
    /// Converts the closure's return value.
    fn into_trigger_outcome(self) -> TriggerOutcome;
}

impl IntoTriggerOutcome for () {
    fn into_trigger_outcome(self) -> TriggerOutcome {
        TriggerOutcome::Done
    }
}

impl<E: fmt::Display> IntoTriggerOutcome for Result<(), E> {
    fn into_trigger_outcome(self) -> TriggerOutcome {
        match self {
            Ok(()) => TriggerOutcome::Done,
            Err(e) => TriggerOutcome::Failed(e.to_string()),
        }
    }
}

pub(crate) type TriggerFn = Box<dyn FnOnce(&Reactor) -> TriggerOutcome>;

#[derive(Default)]
struct EventTriggers {
    phases: [VecDeque<(TriggerId, TriggerFn)>; 3],
}

fn phase_index(phase: Phase) -> usize {
    match phase {
        Phase::Before => 0,
        Phase::During => 1,
        Phase::After => 2,
    }
}

/// All registered triggers.
#[derive(Default)]
pub(crate) struct Triggers {
    next_id: u64,
    events: Vec<(SystemEvent, EventTriggers)>,
}

impl Triggers {
    pub(crate) fn add(&mut self, phase: Phase, event: SystemEvent, f: TriggerFn) -> TriggerId {
        let id = TriggerId(self.next_id);
        self.next_id += 1;
        let index = match self.events.iter().position(|(e, _)| *e == event) {
            Some(i) => i,
            None => {
                self.events.push((event, EventTriggers::default()));
                self.events.len() - 1
            }
        };
        self.events[index].1.phases[phase_index(phase)].push_back((id, f));
        id
    }

    /// Removes a pending trigger, returning its closure (to drop outside the borrow).
    pub(crate) fn remove(&mut self, id: TriggerId) -> Option<TriggerFn> {
        for (_, triggers) in &mut self.events {
            for phase in &mut triggers.phases {
                if let Some(pos) = phase.iter().position(|(tid, _)| *tid == id) {
                    return phase.remove(pos).map(|(_, f)| f);
                }
            }
        }
        None
    }

    /// Takes the next trigger of `event`'s `phase`, if any.
    pub(crate) fn pop(&mut self, event: &SystemEvent, phase: Phase) -> Option<TriggerFn> {
        let (_, triggers) = self.events.iter_mut().find(|(e, _)| e == event)?;
        triggers.phases[phase_index(phase)].pop_front().map(|(_, f)| f)
    }
}
