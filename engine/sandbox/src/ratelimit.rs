//! A rolling-window rate limiter (HubSpot's `TEN_SECONDLY_ROLLING` model): at most `max`
//! admitted requests in any window of length `window`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The limiter's answer for one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The limit per window.
    pub max: u32,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// The window length.
    pub window: Duration,
    /// When a slot frees up (zero if one is free now).
    pub retry_after: Duration,
    /// Admitted requests since start (for daily-style counters).
    pub used_total: u64,
}

/// Rolling window of admitted request times.
#[derive(Debug)]
pub struct Window {
    max: u32,
    window: Duration,
    admitted: VecDeque<Instant>,
    total: u64,
}

impl Window {
    /// A limiter allowing `max` requests per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Window {
            max: max.max(1),
            window,
            admitted: VecDeque::new(),
            total: 0,
        }
    }

    /// A refusal for a request that is throttled whatever the window says (scripted faults).
    pub fn refuse(&self) -> Decision {
        Decision {
            allowed: false,
            max: self.max,
            remaining: 0,
            window: self.window,
            retry_after: self.window,
            used_total: self.total,
        }
    }

    /// Records a request at `now` if there is room.
    pub fn check(&mut self, now: Instant) -> Decision {
        while let Some(&t) = self.admitted.front() {
            if now.duration_since(t) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        let allowed = (self.admitted.len() as u32) < self.max;
        if allowed {
            self.admitted.push_back(now);
            self.total += 1;
        }
        let retry_after = if allowed {
            Duration::ZERO
        } else {
            self.admitted
                .front()
                .map(|&t| self.window.saturating_sub(now.duration_since(t)))
                .unwrap_or_default()
        };
        Decision {
            allowed,
            max: self.max,
            remaining: self.max.saturating_sub(self.admitted.len() as u32),
            window: self.window,
            retry_after,
            used_total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_max_then_refuses_until_the_oldest_leaves() {
        let mut w = Window::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..3 {
            let d = w.check(t0 + Duration::from_secs(i));
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i as u32);
        }
        let d = w.check(t0 + Duration::from_secs(5));
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(5));
        assert!(w.check(t0 + Duration::from_secs(10)).allowed);
        assert!(!w.check(t0 + Duration::from_secs(10)).allowed);
    }
}
