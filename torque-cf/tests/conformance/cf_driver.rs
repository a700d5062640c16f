//! The conformance suite's driver for the CFRunLoop-driven reactor: each case
//! runs on its own thread, so on its own run loop; `run` is `torque_cf::run`,
//! and a step is one run of the loop in its default mode.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use core_foundation::runloop::{CFRunLoop, kCFRunLoopDefaultMode};
use torque::{Capability, Reactor, ReactorError};
use torque_cf::CfRun;

use crate::support::{Driver, Mode};

#[derive(Default)]
pub struct CfDriver {
    runs: RefCell<Vec<CfRun>>,
}

impl CfDriver {
    fn ensure_attached(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        if !reactor.is_started() {
            let run = torque_cf::attach(reactor, &CFRunLoop::get_current()).map_err(reactor_error)?;
            self.runs.borrow_mut().push(run);
        }
        Ok(())
    }
}

impl Driver for CfDriver {
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        if reactor.is_started() {
            // Already attached by a step: run the loop until it finishes.
            while reactor.is_started() {
                self.step(reactor, Duration::from_secs(3600))?;
            }
            self.runs.borrow_mut().retain(|run| !run.is_finished());
            return Ok(());
        }
        torque_cf::run(reactor).map_err(reactor_error)
    }

    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
        self.ensure_attached(reactor)?;
        // SAFETY (test): an immutable CFString constant.
        let mode = unsafe { kCFRunLoopDefaultMode };
        CFRunLoop::run_in_mode(mode, max_wait, true);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "cf"
    }
}

/// The suite speaks `ReactorError`; CF-only errors cannot happen here.
fn reactor_error(error: torque_cf::Error) -> ReactorError {
    match error {
        torque_cf::Error::Reactor(e) => e,
        other => panic!("{other}"),
    }
}

/// Driving by the run loop: a case needs a backend with a watch fd.
pub const CF: Mode =
    Mode { name: "cf", needs: &[Capability::WatchFd], driver: || Rc::new(CfDriver::default()) };
