//! Service names for ports in endpoint descriptions (`tcp:http`,
//! `tls:example.com:https`): `/etc/services` first, as `getservbyname` reads
//! it, then a built-in table of the common ones for systems without the file
//! (minimal containers).

/// The well-known ports used when `/etc/services` lacks a name or is missing:
/// (name, port, the protocols it is registered for).
const BUILT_IN: &[(&str, u16, &[&str])] = &[
    ("echo", 7, &["tcp", "udp"]),
    ("discard", 9, &["tcp", "udp"]),
    ("daytime", 13, &["tcp", "udp"]),
    ("chargen", 19, &["tcp", "udp"]),
    ("ftp", 21, &["tcp"]),
    ("ssh", 22, &["tcp"]),
    ("telnet", 23, &["tcp"]),
    ("smtp", 25, &["tcp"]),
    ("domain", 53, &["tcp", "udp"]),
    ("http", 80, &["tcp"]),
    ("pop3", 110, &["tcp"]),
    ("ntp", 123, &["udp"]),
    ("imap", 143, &["tcp"]),
    ("imap2", 143, &["tcp"]),
    ("snmp", 161, &["udp"]),
    ("https", 443, &["tcp", "udp"]),
    ("syslog", 514, &["udp"]),
    ("submission", 587, &["tcp"]),
    ("imaps", 993, &["tcp"]),
    ("pop3s", 995, &["tcp"]),
    ("http-alt", 8080, &["tcp"]),
];

/// The port of service `name` over `protocol` (`"tcp"` or `"udp"`).
pub(crate) fn service_port(name: &str, protocol: &str) -> Option<u16> {
    std::fs::read_to_string("/etc/services")
        .ok()
        .and_then(|services| find_in_services(&services, name, protocol))
        .or_else(|| {
            BUILT_IN
                .iter()
                .find(|(n, _, protocols)| *n == name && protocols.contains(&protocol))
                .map(|&(_, port, _)| port)
        })
}

/// Looks `name` (or an alias) up in the text of an `/etc/services` file.
fn find_in_services(services: &str, name: &str, protocol: &str) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let official = fields.next()?;
        let (port, proto) = fields.next()?.split_once('/')?;
        let named = official == name || fields.any(|alias| alias == name);
        (named && proto == protocol).then(|| port.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment line
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
ntp\t\t123/udp
bad\t\tnot-a-port/tcp
";

    #[test]
    fn names_and_aliases_resolve_for_their_protocol_only() {
        assert_eq!(find_in_services(SERVICES, "http", "tcp"), Some(80));
        assert_eq!(find_in_services(SERVICES, "www", "tcp"), Some(80));
        assert_eq!(find_in_services(SERVICES, "http", "udp"), None);
        assert_eq!(find_in_services(SERVICES, "ntp", "udp"), Some(123));
        assert_eq!(find_in_services(SERVICES, "bad", "tcp"), None);
        assert_eq!(find_in_services(SERVICES, "comment", "tcp"), None);
    }

    #[test]
    fn the_built_in_table_covers_a_system_without_the_file() {
        assert_eq!(service_port("https", "tcp"), Some(443));
        assert_eq!(service_port("ssh", "tcp"), Some(22));
        assert_eq!(service_port("no-such-service", "tcp"), None);
    }
}
