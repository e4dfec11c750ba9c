//! Allowed outbound hosts (`scheme://host[:port]`, `*.` wildcards) and the post-DNS address
//! policy that keeps plugins away from private networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::Url;

/// One allowed-host rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: HostPattern,
    /// `None` = any port.
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: any subdomain of `suffix` (not `suffix` itself).
    Subdomains(String),
}

impl AllowedHost {
    /// Parses `scheme://host[:port]`; `host` may start with `*.`; `port` may be `*`.
    pub fn parse(text: &str) -> Result<AllowedHost, String> {
        if text.trim() == "*" {
            return Err("a bare `*` is not allowed; list the hosts the plugin needs".into());
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` must look like `https://host[:port]`"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "`{text}`: scheme must be http or https, not `{scheme}`"
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
            return Err(format!(
                "`{text}` must not contain a path, query or user info"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                let port = if p == "*" {
                    None
                } else {
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("`{text}`: invalid port `{p}`"))?,
                    )
                };
                (h, port)
            }
            _ => (rest, Some(default_port(&scheme))),
        };
        if host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        let host = host.to_ascii_lowercase();
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("`{text}`: `*.` must be followed by a domain"));
            }
            HostPattern::Subdomains(suffix.to_string())
        } else if host.contains('*') {
            return Err(format!("`{text}`: `*` is only allowed as a leading `*.`"));
        } else {
            HostPattern::Exact(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        };
        Ok(AllowedHost {
            scheme,
            host: pattern,
            port,
            text: text.to_string(),
        })
    }

    /// Whether `url` is covered by this rule.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
        };
        let port_ok = match self.port {
            None => true,
            Some(p) => url.port_or_known_default() == Some(p),
        };
        host_ok && port_ok
    }

    /// The rule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" { 80 } else { 443 }
}

/// Whether `ip` is in a private, loopback, link-local or otherwise non-global range. An IPv6
/// address that carries an IPv4 address (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`, ISATAP interface identifiers) is
/// judged by that IPv4 address too, so `[::7f00:1]` is loopback; local-use NAT64 `64:ff9b:1::/48`
/// and the other special-purpose IPv6 ranges are never global.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // IETF protocol assignments, 192.0.0.0/24.
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // Benchmarking, 198.18.0.0/15.
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        // Reserved (240.0.0.0/4; 255.255.255.255 is the broadcast above).
        || o[0] >= 240
}

/// The IPv4 addresses an IPv6 address embeds or stands for.
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let mut out = Vec::new();
    // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d (deprecated, still routed by
    // some stacks to the IPv4 address).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        out.push(tail);
    }
    // SIIT "IPv4-translated" ::ffff:0:a.b.c.d.
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        out.push(tail);
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        out.push(tail);
    }
    // 6to4 2002:aabb:ccdd::/48 embeds aa.bb.cc.dd.
    if s[0] == 0x2002 {
        out.push(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo 2001:0000:<server v4>:<flags>:<port>:<client v4 inverted>.
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(Ipv4Addr::new(o[4], o[5], o[6], o[7]));
        out.push(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    // ISATAP interface identifier ::0:5efe:a.b.c.d (or 200:5efe, universal bit set).
    if (s[4] == 0 || s[4] == 0x0200) && s[5] == 0x5efe {
        out.push(tail);
    }
    out
}

fn is_private_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if embedded_v4(v6).into_iter().any(is_private_v4) {
        return true;
    }
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, deprecated site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Local-use NAT64 64:ff9b:1::/48 (translates to any, private included, IPv4 range).
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
        // Discard-only 100::/64.
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
        // Documentation 2001:db8::/32 and 3fff::/20.
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        || (s[0] & 0xfff0) == 0x3ff0
        // IETF protocol assignments 2001::/23 other than Teredo (handled above), e.g.
        // benchmarking 2001:2::/48 and ORCHID 2001:10::/28.
        || (s[0] == 0x2001 && s[1] < 0x200 && s[1] != 0)
        // Segment routing 5f00::/16.
        || s[0] == 0x5f00
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("valid")
    }

    #[test]
    fn exact_wildcard_and_ports() {
        let a = AllowedHost::parse("https://api.crm.example").expect("valid");
        assert!(a.matches(&url("https://api.crm.example/v1/x")));
        assert!(a.matches(&url("https://API.crm.example:443/")));
        assert!(!a.matches(&url("http://api.crm.example/")));
        assert!(!a.matches(&url("https://api.crm.example:8443/")));
        assert!(!a.matches(&url("https://evil.example/?api.crm.example")));

        let w = AllowedHost::parse("https://*.crm.example").expect("valid");
        assert!(w.matches(&url("https://eu.crm.example/")));
        assert!(w.matches(&url("https://a.b.crm.example/")));
        assert!(!w.matches(&url("https://crm.example/")));
        assert!(!w.matches(&url("https://evilcrm.example/")));

        let p = AllowedHost::parse("http://127.0.0.1:8080").expect("valid");
        assert!(p.matches(&url("http://127.0.0.1:8080/a")));
        assert!(!p.matches(&url("http://127.0.0.1:8081/a")));
        let any = AllowedHost::parse("http://127.0.0.1:*").expect("valid");
        assert!(any.matches(&url("http://127.0.0.1:1234/a")));
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in [
            "*",
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://a*.x",
            "https://*.",
            "https://x:99999",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_private() {
        // (address, private?, what)
        let table = [
            ("::7f00:1", true, "IPv4-compatible 127.0.0.1"),
            ("::127.0.0.1", true, "IPv4-compatible, dotted"),
            ("::a00:1", true, "IPv4-compatible 10.0.0.1"),
            ("::ffff:127.0.0.1", true, "IPv4-mapped loopback"),
            ("::ffff:7f00:1", true, "IPv4-mapped loopback, hex"),
            (
                "::ffff:169.254.169.254",
                true,
                "IPv4-mapped metadata service",
            ),
            ("::ffff:0:10.0.0.1", true, "IPv4-translated (SIIT)"),
            ("64:ff9b::7f00:1", true, "NAT64 of 127.0.0.1"),
            ("64:ff9b::192.168.1.1", true, "NAT64 of 192.168.1.1"),
            ("64:ff9b::a9fe:a9fe", true, "NAT64 of 169.254.169.254"),
            ("64:ff9b:1::8.8.8.8", true, "local-use NAT64"),
            ("2002:7f00:1::", true, "6to4 of 127.0.0.1"),
            ("2002:c0a8:101::1", true, "6to4 of 192.168.1.1"),
            ("2002:0a00:0001:1::1", true, "6to4 of 10.0.0.1"),
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                true,
                "Teredo, client 127.0.0.1",
            ),
            ("2001:0:7f00:1::1", true, "Teredo, server 127.0.0.1"),
            ("2a00:1450::5efe:a00:1", true, "ISATAP, 10.0.0.1"),
            ("2001:db8::1", true, "documentation"),
            ("fec0::1", true, "site-local"),
            ("100::1", true, "discard-only"),
            ("::", true, "unspecified"),
            ("::1", true, "loopback"),
            ("ff02::1", true, "multicast"),
            ("::ffff:93.184.216.34", false, "IPv4-mapped public"),
            ("64:ff9b::5db8:d822", false, "NAT64 of a public address"),
            ("2002:5db8:d822::1", false, "6to4 of a public address"),
            (
                "2001:0:5db8:d822:0:0:a247:2bdd",
                false,
                "Teredo, public server and client",
            ),
            ("2606:4700::1111", false, "global unicast"),
            ("2a00:1450:4001:81b::200e", false, "global unicast"),
        ];
        for (ip, private, what) in table {
            let addr: IpAddr = ip.parse().expect("valid address");
            assert_eq!(is_private(addr), private, "{ip} ({what})");
        }
    }

    #[test]
    fn special_ipv4_ranges_are_private() {
        for ip in [
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
        ] {
            assert!(is_private(ip.parse().expect("valid")), "{ip}");
        }
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
        ] {
            assert!(is_private(ip.parse().expect("valid")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().expect("valid")), "{ip}");
        }
    }
}
