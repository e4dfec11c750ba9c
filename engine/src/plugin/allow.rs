//! Allowed outbound hosts (`scheme://host[:port]`, `*.` wildcards) and the post-DNS address
//! policy that keeps plugins away from private networks.

use std::net::IpAddr;
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

/// Whether `ip` is in a private, loopback, link-local or otherwise non-global range.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
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
