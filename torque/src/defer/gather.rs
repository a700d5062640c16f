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
/// settle the gathering early (returning its outcome); when all have arrived
/// `finish` builds the result.
fn gather<T: Clone + 'static, O: 'static>(
    deferreds: Vec<Deferred<T>>,
    consume_errors: bool,
    decide: impl Fn(usize, &Result<T, Failure>) -> Option<Result<O, Failure>> + 'static,
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
            // Decide and take the resolver under one borrow; fire after it ends,
            // because firing runs user callbacks (which may touch the other inputs).
            let firing = {
                let mut s = state.borrow_mut();
                let early = match s.resolver.as_ref() {
                    Some(_) => decide(index, &result),
                    None => None,
                };
                s.results[index] = Some(result);
                s.remaining -= 1;
                match early {
                    Some(outcome) => s.resolver.take().map(|r| (r, outcome)),
                    None if s.remaining == 0 => s.resolver.take().map(|r| {
                        let results: Vec<_> =
                            s.results.iter_mut().map(|x| x.take().expect("all arrived")).collect();
                        let outcome = match finish.borrow_mut().take() {
                            Some(finish) => finish(results),
                            None => Err(Failure::msg("gathering finished twice")),
                        };
                        (r, outcome)
                    }),
                    None => None,
                }
            };
            if let Some((resolver, outcome)) = firing {
                let _ = resolver.resolve(outcome);
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
    gather(deferreds, consume_errors, |_, _| None, Ok)
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
        |index, result| match result {
            Err(failure) => Some(Err(Failure::new(FirstError { index, failure: failure.clone() }))),
            Ok(_) => None,
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
        |index, result| match result {
            Ok(value) => Some(Ok((index, value.clone()))),
            Err(_) => None,
        },
        |results| match results.into_iter().last() {
            Some(Err(failure)) => Err(failure),
            _ => Err(Failure::msg("no deferreds to wait for")),
        },
    )
}
