//! `torque reactors`: the table of Twisted's "Choosing a Reactor", generated from
//! each compiled-in backend's own [`BackendInfo`](torque::BackendInfo).

use std::fmt::Write;

use torque::BackendKind;

/// The reactor table for the backends in this build, as aligned text. The
/// default backend (the one `-r` falls back to) is marked with `*`.
pub fn table() -> String {
    let header =
        ["reactor", "status", "scheduling", "threads", "tcp", "tls", "udp", "processes", "platforms"];
    let default = BackendKind::platform_default();
    let rows: Vec<[String; 9]> = BackendKind::all()
        .iter()
        .map(|kind| {
            let info = kind.info();
            let f = info.features;
            let mark = if *kind == default { "*" } else { "" };
            [
                format!("{}{mark}", info.name),
                info.status.to_owned(),
                f.scheduling.to_string(),
                f.threads.to_string(),
                f.tcp.to_string(),
                f.tls.to_string(),
                f.udp.to_string(),
                f.processes.to_string(),
                info.platforms.to_owned(),
            ]
        })
        .collect();
    let mut widths: [usize; 9] = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let _ = writeln!(out);
    for kind in BackendKind::all() {
        let info = kind.info();
        let limit = info.fd_limit.map_or(String::new(), |n| format!("; fds below {n} only"));
        let _ = writeln!(out, "{:<8} {} (wait cost {}{limit})", info.name, info.summary, info.wait_cost);
    }
    let _ = writeln!(out, "\n* the default here; choose with -r NAME or TORQUE_REACTOR=NAME");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_backend_has_a_row() {
        let table = super::table();
        for kind in torque::BackendKind::all() {
            assert!(table.lines().any(|l| l.starts_with(kind.name())), "{table}");
        }
        assert!(table.starts_with("reactor"), "{table}");
    }
}
