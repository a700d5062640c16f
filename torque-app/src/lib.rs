//! The `torque` command and the services it runs: Twisted's `twistd` for Torque.
//!
//! - [`service`]: the service tree (start, stop with a Deferred), and how it is
//!   tied to a reactor's startup and shutdown;
//! - [`web`]: the static HTTP/1.1 file server behind `torque web`;
//! - [`services`]: echo, discard, daytime, chargen and port forwarding;
//! - [`cli`]: argument parsing and running a service on a chosen reactor;
//! - [`reactors`], [`logging`], [`pidfile`]: the rest of the command;
//! - [`platform`]: the few calls that differ between operating systems.
//!
//! Run `torque --help`, or see the README's tour.

#![warn(missing_docs, missing_debug_implementations)]
// `unsafe` only in `platform` (its Windows calls), each block with a SAFETY note.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod logging;
pub mod pidfile;
#[allow(unsafe_code)]
pub mod platform;
pub mod reactors;
pub mod service;
pub mod services;
pub mod web;
pub mod workers;
