//! The conformance suite's driver for the GLib-driven reactor: each case gets
//! its own GLib main context (pushed as its thread's default), `run` is
//! `torque_glib::run`, and a step is one iteration of that context.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torque::{Capability, Reactor, ReactorError};
use torque_glib::GlibRun;

use crate::support::{Driver, Mode};

pub struct GlibDriver {
    context: glib::MainContext,
    runs: RefCell<Vec<GlibRun>>,
}

impl GlibDriver {
    fn new() -> GlibDriver {
        let context = glib::MainContext::new();
        // The case's thread is new and ends with the case: the context stays
        // its default for the whole case.
        std::mem::forget(context.acquire().expect("a new context is free"));
        GlibDriver { context, runs: RefCell::new(Vec::new()) }
    }

    fn ensure_attached(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        if !reactor.is_started() {
            let run = torque_glib::attach(reactor, &self.context).map_err(reactor_error)?;
            self.runs.borrow_mut().push(run);
        }
        Ok(())
    }
}

impl Driver for GlibDriver {
    fn run(&self, reactor: &Reactor) -> Result<(), ReactorError> {
        self.runs.borrow_mut().retain(|run| !run.is_finished());
        if reactor.is_started() {
            // Already attached by a step: iterate until it finishes.
            while reactor.is_started() {
                self.context.iteration(true);
            }
            self.runs.borrow_mut().retain(|run| !run.is_finished());
            return Ok(());
        }
        self.context
            .with_thread_default(|| torque_glib::run(reactor))
            .expect("push the context")
            .map_err(reactor_error)
    }

    fn step(&self, reactor: &Reactor, max_wait: Duration) -> Result<(), ReactorError> {
        self.ensure_attached(reactor)?;
        if max_wait.is_zero() {
            self.context.iteration(false);
        } else {
            // Bound the blocking iteration by a GLib timeout of our own.
            let timeout = glib::timeout_source_new(max_wait, None, glib::Priority::DEFAULT, || {
                glib::ControlFlow::Break
            });
            timeout.attach(Some(&self.context));
            self.context.iteration(true);
            timeout.destroy();
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "glib"
    }
}

/// The suite speaks `ReactorError`; GLib-only errors cannot happen here.
fn reactor_error(error: torque_glib::Error) -> ReactorError {
    match error {
        torque_glib::Error::Reactor(e) => e,
        other => panic!("{other}"),
    }
}

/// Driving by GLib: a case needs a backend with a watch fd.
pub const GLIB: Mode =
    Mode { name: "glib", needs: &[Capability::WatchFd], driver: || Rc::new(GlibDriver::new()) };
