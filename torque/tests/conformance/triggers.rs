//! System event triggers: phases, order, removal, failures.

use torque::{BackendKind, Phase, ReactorError, SystemEvent, TriggerId};

use crate::support::{Log, reactor};
use std::cell::Cell;
use std::rc::Rc;

fn phases_run_in_order_fifo_within_a_phase(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    for (phase, name) in [
        (Phase::After, "after1"),
        (Phase::During, "during1"),
        (Phase::Before, "before1"),
        (Phase::After, "after2"),
        (Phase::Before, "before2"),
        (Phase::During, "during2"),
    ] {
        let l = log.clone();
        r.add_system_event_trigger(phase, "custom", move |_| l.push(name));
    }
    r.fire_system_event("custom");
    assert_eq!(log.take(), ["before1", "before2", "during1", "during2", "after1", "after2"]);
}

fn removing_a_trigger_twice_is_an_error(kind: BackendKind) {
    let r = reactor(kind);
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let id = r.add_system_event_trigger(Phase::During, "ev", move |_| ran2.set(true));
    r.remove_system_event_trigger(id).unwrap();
    assert!(matches!(r.remove_system_event_trigger(id), Err(ReactorError::UnknownTrigger)));
    r.fire_system_event("ev");
    assert!(!ran.get());
}

fn a_trigger_removed_by_an_earlier_one_does_not_run(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let victim: Rc<Cell<Option<TriggerId>>> = Rc::default();
    let v = victim.clone();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, "ev", move |r| {
        l.push("first");
        r.remove_system_event_trigger(v.get().unwrap()).unwrap();
    });
    let l = log.clone();
    victim.set(Some(r.add_system_event_trigger(Phase::After, "ev", move |_| l.push("victim"))));
    let l = log.clone();
    r.add_system_event_trigger(Phase::After, "ev", move |_| l.push("last"));
    r.fire_system_event("ev");
    assert_eq!(log.take(), ["first", "last"]);
}

fn failing_and_panicking_triggers_are_logged_and_the_rest_run(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    r.add_system_event_trigger(Phase::Before, "ev", |_| -> Result<(), String> { Err("disk on fire".into()) });
    r.add_system_event_trigger(Phase::Before, "ev", |_| -> () { panic!("trigger panicked on purpose") });
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, "ev", move |_| l.push("before survived"));
    let l = log.clone();
    r.add_system_event_trigger(Phase::After, "ev", move |_| l.push("after survived"));
    let logs = crate::support::capture_logs(|| r.fire_system_event("ev"));
    assert_eq!(log.take(), ["before survived", "after survived"]);
    assert!(logs.contains("a system event trigger failed") && logs.contains("disk on fire"), "{logs}");
    assert!(
        logs.contains("a system event trigger panicked") && logs.contains("trigger panicked on purpose"),
        "{logs}"
    );
}

fn a_trigger_runs_once_and_then_cannot_be_removed(kind: BackendKind) {
    let r = reactor(kind);
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let id = r.add_system_event_trigger(Phase::During, "ev", move |_| c.set(c.get() + 1));
    r.fire_system_event("ev");
    r.fire_system_event("ev");
    assert_eq!(count.get(), 1);
    assert!(matches!(r.remove_system_event_trigger(id), Err(ReactorError::UnknownTrigger)));
}

fn a_trigger_added_during_firing_to_a_later_phase_runs(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::Before, "ev", move |r| {
        let inner = l.clone();
        r.add_system_event_trigger(Phase::After, "ev", move |_| inner.push("added late"));
        l.push("before");
    });
    r.fire_system_event("ev");
    assert_eq!(log.take(), ["before", "added late"]);
}

fn events_are_independent_and_named_events_match_strings(kind: BackendKind) {
    let r = reactor(kind);
    let log = Log::default();
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, SystemEvent::Named("a".into()), move |_| l.push("a"));
    let l = log.clone();
    r.add_system_event_trigger(Phase::During, "b", move |_| l.push("b"));
    r.fire_system_event("b");
    assert_eq!(log.take(), ["b"]);
    r.fire_system_event("a");
    assert_eq!(log.take(), ["a"]);
    assert_eq!(SystemEvent::from("shutdown"), SystemEvent::Shutdown);
}

crate::cases! {
    [] plain {
        phases_run_in_order_fifo_within_a_phase,
        removing_a_trigger_twice_is_an_error,
        a_trigger_removed_by_an_earlier_one_does_not_run,
        failing_and_panicking_triggers_are_logged_and_the_rest_run,
        a_trigger_runs_once_and_then_cannot_be_removed,
        a_trigger_added_during_firing_to_a_later_phase_runs,
        events_are_independent_and_named_events_match_strings,
    }
}
