//! Client-side rate limiting: a token bucket per tenant and connector (and one per class of
//! endpoints the vendor limits apart, `rate_limit.classes`), paced so that no window
//! of the vendor's length ever sees more than the vendor's limit, adjusted by the vendor's
//! rate-limit headers and paused by throttling responses (429, `Retry-After`).

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket shared by every request of one tenant to one connector.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

/// `(burst, tokens per second)` for `requests` per `per_seconds`: a bucket holding `burst`
/// tokens refilling at `r` allows at most `burst + r·W` requests in any window `W`; keeping
/// that one below the limit leaves room for network jitter between client and server clocks.
pub fn pace(requests: u32, per_seconds: u32) -> (f64, f64) {
    let n = f64::from(requests.max(1));
    let w = f64::from(per_seconds.max(1));
    let burst = (n / 50.0).floor().max(1.0);
    let slack = (n / 100.0).floor().max(1.0);
    let rate = ((n - burst - slack).max(1.0)) / w;
    (burst, rate)
}

impl RateLimiter {
    /// A limiter allowing `requests` per `per_seconds`.
    pub fn new(requests: u32, per_seconds: u32) -> Self {
        let (burst, rate) = pace(requests, per_seconds);
        Self {
            state: Mutex::new(Bucket {
                tokens: burst,
                burst,
                rate,
                last: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Wait for a token. Waiters are served in order (the lock is fair).
    pub async fn acquire(&self) {
        let mut b = self.state.lock().await;
        loop {
            let now = Instant::now();
            if let Some(p) = b.paused_until {
                if p > now {
                    tokio::time::sleep_until(p).await;
                    continue;
                }
                b.paused_until = None;
                b.last = Instant::now();
            }
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - b.tokens) / b.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// The vendor said "slow down": no request before `after` has passed.
    pub async fn pause(&self, after: Duration) {
        let mut b = self.state.lock().await;
        let until = Instant::now() + after;
        b.tokens = 0.0;
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
    }

    /// Adjust to the vendor's view: a lower advertised limit lowers the pace; no remaining
    /// requests empties the bucket until the window resets.
    pub async fn observe(
        &self,
        limit: Option<u32>,
        window: Option<Duration>,
        remaining: Option<u32>,
        reset: Option<Duration>,
    ) {
        let mut b = self.state.lock().await;
        if let (Some(l), Some(w)) = (limit, window) {
            let secs = w.as_secs().max(1) as u32;
            let (burst, rate) = pace(l, secs);
            if rate < b.rate {
                b.rate = rate;
                b.burst = burst.min(b.burst);
                b.tokens = b.tokens.min(b.burst);
            }
        }
        if remaining == Some(0) {
            b.tokens = 0.0;
            let wait = reset.or(window).unwrap_or(Duration::from_secs(1));
            let until = Instant::now() + wait;
            if b.paused_until.is_none_or(|p| p < until) {
                b.paused_until = Some(until);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pace_never_exceeds_the_window() {
        for (n, w) in [(100, 10), (25, 1), (20, 2), (700, 60), (1, 1), (3, 20)] {
            let (burst, rate) = pace(n, w);
            let most = burst + rate * f64::from(w);
            assert!(most <= f64::from(n).max(2.0), "{n}/{w}: {most}");
            assert!(burst >= 1.0 && rate > 0.0);
        }
        let (b, r) = pace(100, 10);
        assert!(
            (b + r * 10.0) >= 95.0,
            "keeps at least 95% of the allowed rate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_paces_requests() {
        let l = RateLimiter::new(100, 10);
        let start = Instant::now();
        for _ in 0..50 {
            l.acquire().await;
        }
        let secs = start.elapsed().as_secs_f64();
        // 2 burst tokens, then 9.7/s: 48 more take ~4.95 s.
        assert!((4.8..5.2).contains(&secs), "{secs}");
    }
}
