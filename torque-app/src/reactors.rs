//! `torque reactors`: the table of Twisted's "Choosing a Reactor", generated
//! from each backend's own [`BackendInfo`]. The README's
//! table is this output (a test checks that they match).

use std::fmt::Write;

use torque::{BackendInfo, BackendKind, Capability, ChildExit, SignalDelivery, Wake};

/// The reactor table for every backend Torque has, as aligned text: whether
/// this build has it (`here`), its status and what it supports, then a line on
/// each. The default backend (the one `-r` falls back to) is marked with `*`.
pub fn table() -> String {
    let mut header = vec!["reactor", "here", "status"];
    header.extend(Capability::ALL.iter().map(|c| c.name()));
    let default = BackendKind::platform_default();
    let rows: Vec<Vec<String>> = BackendKind::known()
        .iter()
        .map(|&kind| {
            let info = kind.info();
            let mark = if kind == default { "*" } else { "" };
            let mut row = vec![
                format!("{}{mark}", info.name),
                if kind.is_available() { "yes" } else { "no" }.to_owned(),
                info.status.to_string(),
            ];
            row.extend(Capability::ALL.iter().map(|&c| info.features.get(c).to_string()));
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}", w = *w)).collect();
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let _ = writeln!(out);
    for &kind in BackendKind::known() {
        let _ = writeln!(out, "{}", describe(kind.info()));
    }
    let _ = writeln!(
        out,
        "\n* the default here; choose with -r NAME or TORQUE_REACTOR=NAME.\n\
         compile-checked: built with its tests for its platforms in CI, not run there."
    );
    out
}

/// One backend's line: what it is, how a wait costs, how it wakes, hears
/// children and stop signals, and its limits.
fn describe(info: &BackendInfo) -> String {
    let children = match info.child_exit {
        ChildExit::Pidfd => "pidfd",
        ChildExit::ProcFilter => "EVFILT_PROC",
        ChildExit::Sigchld => "SIGCHLD",
        ChildExit::ProcessHandle => "process handle",
        _ => "other",
    };
    let wake = match info.wake {
        Wake::EventFd => "eventfd",
        Wake::Pipe => "pipe",
        Wake::UserEvent => "EVFILT_USER",
        Wake::Event => "event object",
        Wake::PortPacket => "completion packet",
        _ => "other",
    };
    let signals = match info.signals {
        SignalDelivery::Handler => "handler",
        SignalDelivery::ConsoleHandler => "console handler",
        _ => "other",
    };
    let limit = info.fd_limit.map_or(String::new(), |n| format!("; fds below {n} only"));
    format!(
        "{:<8} {}. On {}. Wait {}; children: {children}; wake: {wake}; stop signals: {signals}{limit}.",
        info.name, info.summary, info.platforms, info.wait_cost
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_backend_has_a_row() {
        let table = super::table();
        for kind in torque::BackendKind::known() {
            assert!(table.lines().any(|l| l.starts_with(kind.name())), "{table}");
        }
        assert!(table.starts_with("reactor"), "{table}");
    }
}
