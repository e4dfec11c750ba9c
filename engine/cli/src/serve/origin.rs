//! The URL a webhook's sender called, which URL-signing schemes (HubSpot v3) sign: the
//! operator's `--public-url`, else the scheme and host a trusted reverse proxy forwarded
//! (`Forwarded`, `X-Forwarded-Proto`, `X-Forwarded-Host`), else the request's own
//! `http://{Host}`. Forwarding headers from any other peer are ignored: anyone can send them.

use axum::http::{HeaderMap, Uri};
use std::net::IpAddr;

/// Forwarding header values longer than this are ignored (a proxy writes a few dozen bytes).
const MAX_FORWARDED_BYTES: usize = 1024;
/// Longest host name accepted from a header.
const MAX_HOST_BYTES: usize = 255;

/// How `serve` rebuilds the URL a sender called.
#[derive(Debug, Default)]
pub(super) struct Origin {
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    public: Option<String>,
    trusted: Vec<Cidr>,
}

impl Origin {
    /// From `--public-url` and the `--trusted-proxy` CIDRs.
    pub fn new(public_url: Option<&str>, trusted: &[String]) -> Result<Origin, String> {
        let public = public_url.map(public_base).transpose()?;
        let trusted = trusted
            .iter()
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Origin { public, trusted })
    }

    /// The URL `uri` was called as, by a request from `peer` with `headers`.
    pub fn url(&self, peer: IpAddr, headers: &HeaderMap, uri: &Uri) -> String {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        if let Some(base) = &self.public {
            return format!("{base}{pq}");
        }
        let own_host = || {
            headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .filter(|h| valid_host(h))
                .unwrap_or("localhost")
                .to_string()
        };
        let peer = peer.to_canonical();
        if self.trusted.iter().any(|c| c.contains(peer)) {
            let (proto, host) = forwarded(headers);
            let host = host.unwrap_or_else(own_host);
            return format!("{}://{host}{pq}", proto.unwrap_or("http"));
        }
        format!("http://{}{pq}", own_host())
    }
}

/// `--public-url` checked and normalised: http(s), a host, no credentials, query or fragment.
fn public_base(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("--public-url `{s}`: {why}");
    let u = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https (or http)"));
    }
    if u.host_str().is_none() {
        return Err(bad("no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("credentials do not belong in it"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// The scheme and host the nearest proxy forwarded: `Forwarded` (RFC 7239) when present, else
/// `X-Forwarded-Proto` / `X-Forwarded-Host`. The last value of each is the one the trusted
/// proxy wrote (earlier ones come from further away, or from the client).
fn forwarded(headers: &HeaderMap) -> (Option<&'static str>, Option<String>) {
    let last = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_FORWARDED_BYTES)
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
    };
    let (proto, host) = match last("forwarded") {
        Some(element) => {
            let (mut proto, mut host) = (None, None);
            for pair in element.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    let v = v.trim().trim_matches('"');
                    if k.trim().eq_ignore_ascii_case("proto") {
                        proto = Some(v);
                    } else if k.trim().eq_ignore_ascii_case("host") {
                        host = Some(v);
                    }
                }
            }
            (proto, host)
        }
        None => (last("x-forwarded-proto"), last("x-forwarded-host")),
    };
    let proto = proto.and_then(|p| {
        if p.eq_ignore_ascii_case("https") {
            Some("https")
        } else if p.eq_ignore_ascii_case("http") {
            Some("http")
        } else {
            None
        }
    });
    (proto, host.filter(|h| valid_host(h)).map(str::to_string))
}

/// A host (and port) as it may appear in a URL: letters, digits, `.-:` and IPv6 brackets.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_BYTES
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// An address range (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = |why: &str| format!("--trusted-proxy `{s}`: {why}");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| bad("not an IP address or CIDR range"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().expect("header value"));
        }
        m
    }

    const LOOP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn cidr_ranges() {
        let c: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(c.contains("10.20.30.40".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(!c.contains("::1".parse().expect("ip")));
        let one: Cidr = "127.0.0.1".parse().expect("cidr");
        assert!(one.contains(LOOP));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        let v6: Cidr = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let uri: Uri = "/webhooks/t/s?x=1".parse().expect("uri");
        let fwd = h(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example, hooks.example.com"),
        ]);
        let untrusted = Origin::new(None, &["10.0.0.0/8".into()]).expect("origin");
        assert_eq!(
            untrusted.url(LOOP, &fwd, &uri),
            "http://10.0.0.5:8080/webhooks/t/s?x=1"
        );
        let trusted = Origin::new(None, &["127.0.0.1/32".into()]).expect("origin");
        assert_eq!(
            trusted.url(LOOP, &fwd, &uri),
            "https://hooks.example.com/webhooks/t/s?x=1"
        );
        let rfc = h(&[
            ("host", "internal"),
            (
                "forwarded",
                "for=1.2.3.4;proto=http, for=5.6.7.8;proto=https;host=\"a.example\"",
            ),
            ("x-forwarded-host", "ignored.example"),
        ]);
        assert_eq!(
            trusted.url(LOOP, &rfc, &uri),
            "https://a.example/webhooks/t/s?x=1"
        );
        // Junk is ignored, not copied into the URL.
        let junk = h(&[
            ("host", "internal"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "a/b@c"),
        ]);
        assert_eq!(
            trusted.url(LOOP, &junk, &uri),
            "http://internal/webhooks/t/s?x=1"
        );
    }

    #[test]
    fn the_public_url_wins() {
        let o = Origin::new(Some("https://Hooks.Example.com/sy/"), &["0.0.0.0/0".into()])
            .expect("origin");
        let uri: Uri = "/webhooks/t/s".parse().expect("uri");
        let fwd = h(&[("x-forwarded-host", "evil.example")]);
        assert_eq!(
            o.url(LOOP, &fwd, &uri),
            "https://hooks.example.com/sy/webhooks/t/s"
        );
        for bad in ["ftp://x", "https://u:p@x", "https://x/?q=1", "not a url"] {
            assert!(Origin::new(Some(bad), &[]).is_err(), "{bad}");
        }
    }
}
