//! Fault injection: which request gets which fault, by rate (seeded) or by script.
//!
//! Where a fault strikes matters for exactly-once delivery, so it is fixed here:
//! `5xx`, `timeout`, `drop` and `rate_limit` strike *before* the request reaches the vendor's
//! state (nothing was written); `malformed` strikes *after* (the write happened, the answer is
//! garbled); `slow` only delays.

use super::SandboxError;
use serde::Deserialize;
use std::time::Duration;

/// How long a `timeout` fault holds the request before closing the connection without an
/// answer. Clients must time out before this.
pub const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// Faults to inject, by rate and by script. `Default` = none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Share of requests (0–1) answered with a vendor-shaped 500/502/503. Default: 0.
    pub error_5xx_rate: f64,
    /// Share of requests held past the client's timeout ([`TIMEOUT_HOLD`]), then closed without
    /// an answer. Default: 0.
    pub timeout_rate: f64,
    /// Share of requests whose connection is closed without a response. Default: 0.
    pub drop_rate: f64,
    /// Share of requests answered 200 with a truncated, unparseable body (after the request
    /// was processed). Default: 0.
    pub malformed_rate: f64,
    /// Delay added to every response, in milliseconds. Default: 0.
    pub slow_ms: u64,
    /// Faults for given request numbers; they take precedence over the rates. Default: empty.
    pub script: Vec<ScriptedFault>,
}

/// One scripted fault: request number `request` (1-based, in arrival order, counting every
/// request the emulator receives) gets `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedFault {
    /// The 1-based request number.
    pub request: u64,
    /// The fault it gets.
    pub fault: FaultKind,
}

/// One line of a fault script as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScripted {
    request: u64,
    fault: String,
    status: Option<u16>,
    ms: Option<u64>,
}

impl TryFrom<RawScripted> for ScriptedFault {
    type Error = String;

    fn try_from(r: RawScripted) -> Result<Self, String> {
        let fault = match r.fault.as_str() {
            "5xx" | "server_error" => FaultKind::ServerError {
                status: r.status.unwrap_or(503),
            },
            "timeout" => FaultKind::Timeout,
            "drop" => FaultKind::Drop,
            "malformed" => FaultKind::Malformed,
            "slow" => FaultKind::Slow {
                ms: r.ms.unwrap_or(2000),
            },
            "rate_limit" => FaultKind::RateLimit,
            other => {
                return Err(format!(
                    "request {}: unknown fault `{other}` (expected 5xx, timeout, drop, malformed, slow or rate_limit)",
                    r.request
                ));
            }
        };
        Ok(ScriptedFault {
            request: r.request,
            fault,
        })
    }
}

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A vendor-shaped 5xx answer (`status` 500, 502 or 503; default 503).
    ServerError {
        /// The HTTP status. Default in scripts: 503.
        status: u16,
    },
    /// Hold the request past the client's timeout, then close without answering.
    Timeout,
    /// Close the connection without a response.
    Drop,
    /// Process the request, then answer 200 with a truncated body.
    Malformed,
    /// Answer normally after `ms` milliseconds.
    Slow {
        /// The delay. Default in scripts: 2000.
        ms: u64,
    },
    /// The vendor's throttling response, whatever the rate limiter says.
    RateLimit,
}

impl FaultKind {
    /// The name used in [`super::Stats::faults`].
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerError { .. } => "5xx",
            FaultKind::Timeout => "timeout",
            FaultKind::Drop => "drop",
            FaultKind::Malformed => "malformed",
            FaultKind::Slow { .. } => "slow",
            FaultKind::RateLimit => "rate_limit",
        }
    }
}

impl FaultConfig {
    /// Checks rates are in 0–1 and sum to at most 1.
    pub fn check(&self) -> Result<(), SandboxError> {
        let rates = [
            ("5xx", self.error_5xx_rate),
            ("timeout", self.timeout_rate),
            ("drop", self.drop_rate),
            ("malformed", self.malformed_rate),
        ];
        for (name, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(SandboxError::InvalidOption(format!(
                    "{name} fault rate {r} is not between 0 and 1"
                )));
            }
        }
        let sum: f64 = rates.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(SandboxError::InvalidOption(format!(
                "fault rates add up to {sum}, more than 1"
            )));
        }
        for s in &self.script {
            if let FaultKind::ServerError { status } = s.fault
                && !(500..=599).contains(&status)
            {
                return Err(SandboxError::InvalidOption(format!(
                    "scripted 5xx fault for request {} has status {status}",
                    s.request
                )));
            }
        }
        Ok(())
    }

    /// The fault for request number `n` (1-based), if any. Deterministic in (`seed`, `n`).
    pub(crate) fn decide(&self, seed: u64, n: u64) -> Option<FaultKind> {
        if let Some(s) = self.script.iter().find(|s| s.request == n) {
            return Some(s.fault);
        }
        let u = unit(seed, n, 1);
        let mut edge = self.error_5xx_rate;
        if u < edge {
            let status = [500, 502, 503][(unit(seed, n, 2) * 3.0) as usize % 3];
            return Some(FaultKind::ServerError { status });
        }
        edge += self.timeout_rate;
        if u < edge {
            return Some(FaultKind::Timeout);
        }
        edge += self.drop_rate;
        if u < edge {
            return Some(FaultKind::Drop);
        }
        edge += self.malformed_rate;
        if u < edge {
            return Some(FaultKind::Malformed);
        }
        None
    }
}

/// A uniform draw in [0, 1) from (seed, request number, stream): SplitMix64.
fn unit(seed: u64, n: u64, stream: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a fault script: a JSON array of `{"request": N, "fault": "5xx"|"timeout"|"drop"|
/// "malformed"|"slow"|"rate_limit", "status"?: 503, "ms"?: 2000}`, or the same objects one
/// per line (JSON lines).
pub fn load_fault_script(path: &std::path::Path) -> Result<Vec<ScriptedFault>, SandboxError> {
    let err = |message: String| SandboxError::FaultScript {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse_fault_script(&text).map_err(err)
}

fn parse_fault_script(text: &str) -> Result<Vec<ScriptedFault>, String> {
    let raw: Vec<RawScripted> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            out.push(serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        out
    };
    raw.into_iter().map(ScriptedFault::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_parses_both_forms() {
        let a = parse_fault_script(
            r#"[{"request":2,"fault":"5xx"},{"request":3,"fault":"slow","ms":5}]"#,
        )
        .expect("array form");
        assert_eq!(a[0].fault, FaultKind::ServerError { status: 503 });
        assert_eq!(a[1].fault, FaultKind::Slow { ms: 5 });
        let b = parse_fault_script(
            "{\"request\":1,\"fault\":\"drop\"}\n\n{\"request\":4,\"fault\":\"timeout\"}\n",
        )
        .expect("lines form");
        assert_eq!(b.len(), 2);
        assert!(parse_fault_script(r#"{"request":1,"fault":"nope"}"#).is_err());
    }

    #[test]
    fn rates_are_deterministic_and_roughly_right() {
        let cfg = FaultConfig {
            error_5xx_rate: 0.1,
            timeout_rate: 0.05,
            ..FaultConfig::default()
        };
        let draws: Vec<_> = (1..=10_000).map(|n| cfg.decide(7, n)).collect();
        let again: Vec<_> = (1..=10_000).map(|n| cfg.decide(7, n)).collect();
        assert_eq!(draws, again);
        let e = draws
            .iter()
            .filter(|d| matches!(d, Some(FaultKind::ServerError { .. })))
            .count();
        let t = draws
            .iter()
            .filter(|d| matches!(d, Some(FaultKind::Timeout)))
            .count();
        assert!((800..1200).contains(&e), "{e}");
        assert!((350..650).contains(&t), "{t}");
    }

    #[test]
    fn bad_rates_are_rejected() {
        let cfg = FaultConfig {
            drop_rate: 1.5,
            ..FaultConfig::default()
        };
        assert!(cfg.check().is_err());
    }
}
