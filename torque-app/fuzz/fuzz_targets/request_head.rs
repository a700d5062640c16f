//! The request parser of `torque web` on arbitrary bytes: it must never
//! panic, and what it consumes must stay within what it was given (see
//! `torque_app::web::request::check_invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| torque_app::web::request::check_invariants(data));
