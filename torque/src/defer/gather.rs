//! Waiting on many Deferreds (Twisted's `DeferredList` and `gatherResults`).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::{Deferred, Failure, Resolver};

/// The failure of a gathering when one of its Deferreds failed (Twisted's
/// `FirstError`).
#[derive(Debug, Clone)]
pub struct FirstError {
    /// The position of the Deferred that failed.
    pub index: usize,
    /// Its failure.
    pub failure: Failure,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred {} of the list failed: {}", self.index, self.failure)
    }
}

impl std::error::Error for FirstError {}

struct Gathering<T, O> {
    results: Vec<Option<Result<T, Failure>>>,
    remaining: usize,
    resolver: Option<Resolver<O>>,
}

/// Attaches a recording step to each Deferred; `decide` sees each arrival and may
/// fire the gathering early; when all have arrived `finish` builds the result.
fn gather<T: Clone + 'static, O: 'static>(
    deferreds: Vec<Deferred<T>>,
    consume_errors: bool,
    decide: impl Fn(usize, &Result<T, Failure>, &Resolver<O>) -> bool + 'static,
    finish: impl FnOnce(Vec<Result<T, Failure>>) -> Result<O, Failure> + 'static,
) -> Deferred<O> {
    let (deferred, resolver) = Deferred::<O>::pending();
    if deferreds.is_empty() {
        let _ = resolver.resolve(finish(Vec::new()));
        return deferred;
    }
    let state = Rc::new(RefCell::new(Gathering {
        results: (0..deferreds.len()).map(|_| None).collect(),
        remaining: deferreds.len(),
        resolver: Some(resolver),
    }));
    let decide = Rc::new(decide);
    let finish = Rc::new(RefCell::new(Some(finish)));
    for (index, d) in deferreds.into_iter().enumerate() {
        let (state, decide, finish) = (state.clone(), decide.clone(), finish.clone());
        // Each input chain ends here; its value or failure is handed on, and the
        // input keeps its failure only when errors are not consumed.
        let _tail: Deferred<()> = d.add_both(move |result: Result<T, Failure>| {
            let passed_on = match &result {
                Err(f) if !consume_errors => Err(f.clone()),
                _ => Ok(()),
            };
            let fire_now = {
                let s = state.borrow();
                match &s.resolver {
                    Some(resolver) => decide(index, &result, resolver),
                    None => false,
                }
            };
            let mut s = state.borrow_mut();
            s.results[index] = Some(result);
            s.remaining -= 1;
            if fire_now {
                s.resolver.take();
            } else if s.remaining == 0 {
                if let Some(resolver) = s.resolver.take() {
                    let results: Vec<_> =
                        s.results.iter_mut().map(|r| r.take().expect("all arrived")).collect();
                    drop(s);
                    if let Some(finish) = finish.borrow_mut().take() {
                        let _ = resolver.resolve(finish(results));
                    }
                }
            }
            passed_on
        });
    }
    deferred
}

/// Waits for every Deferred and fires with all outcomes in order (Twisted's
/// `DeferredList`). With `consume_errors`, the inputs' failures count as handled;
/// without, each failed input also logs its failure when dropped.
pub fn all_settled<T: Clone + 'static>(
    deferreds: Vec<Deferred<T>>,
    consume_errors: bool,
) -> Deferred<Vec<Result<T, Failure>>> {
    gather(deferreds, consume_errors, |_, _, _| false, Ok)
}

/// Fires with every value in order, or fails with [`FirstError`] as soon as one
/// fails (Twisted's `gatherResults`).
pub fn gather_results<T: Clone + 'static>(
    deferreds: Vec<Deferred<T>>,
    consume_errors: bool,
) -> Deferred<Vec<T>> {
    gather(
        deferreds,
        consume_errors,
        |index, result, resolver: &Resolver<Vec<T>>| match result {
            Err(failure) => {
                let _ = resolver.errback(FirstError { index, failure: failure.clone() });
                true
            }
            Ok(_) => false,
        },
        |results| results.into_iter().collect(),
    )
}

/// Fires with the position and value of the first Deferred to succeed; if all
/// fail, fails with the last failure (Twisted's `fireOnOneCallback`).
pub fn first_success<T: Clone + 'static>(deferreds: Vec<Deferred<T>>) -> Deferred<(usize, T)> {
    gather(
        deferreds,
        true,
        |index, result, resolver: &Resolver<(usize, T)>| match result {
            Ok(value) => {
                let _ = resolver.callback((index, value.clone()));
                true
            }
            Err(_) => false,
        },
        |results| match results.into_iter().last() {
            Some(Err(failure)) => Err(failure),
            _ => Err(Failure::msg("no deferreds to wait for")),
        },
    )
}
