//! The exact Shapley model over channel coalitions.
//!
//! **Characteristic function.** For a coalition S of channels,
//! `v(S) = Σ conversions of the converting journeys whose set of distinct channels is a
//! non-empty subset of S` (and likewise for value): what S could have produced on its own, had
//! every channel outside it been switched off. `v(∅) = 0` and `v(all channels)` is every
//! attributed conversion, so the credits add up to the attributed total (efficiency) and a
//! channel that appears in no converting journey gets nothing (null player). Order, repetition
//! and timing of touches do not enter v; the time-aware models are the heuristic and Markov ones.
//!
//! **Computation.** Journeys are first aggregated by channel set (a bit mask), so the cost does
//! not depend on the number of journeys beyond one pass. `v` is the subset-sum (zeta) transform
//! of the per-set totals, O(n·2^n), and each channel's value is the exact Shapley formula
//! `φ_i = Σ_{S ∌ i} |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S))`, O(n·2^n). With this v the result
//! equals splitting each journey's conversions equally among its distinct channels (v is a sum
//! of unanimity games), which the tests use as an independent check of the formula.

use super::models::{Credit, Journeys};

/// Hard upper bound on channels (2^20 coalitions of two floats: 16 MiB).
pub const MAX_CHANNELS: usize = 20;

/// Why the Shapley model could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("shapley: {channels} channels in converting journeys exceed the limit of {limit}")]
pub struct TooManyChannels {
    /// Distinct channels in converting journeys.
    pub channels: usize,
    /// The configured limit.
    pub limit: usize,
}

/// Exact Shapley credits by channel id, for at most `max_channels` distinct channels among the
/// converting journeys.
pub fn shapley(journeys: &Journeys, max_channels: usize) -> Result<Vec<Credit>, TooManyChannels> {
    let limit = max_channels.min(MAX_CHANNELS);
    // Compact ids: only channels of converting journeys play.
    let mut compact = vec![usize::MAX; journeys.channels.len()];
    let mut players: Vec<usize> = Vec::new();
    for j in journeys
        .paths
        .iter()
        .filter(|j| j.conversions != 0.0 || j.value != 0.0)
    {
        for &c in &j.channels {
            let c = c as usize;
            if compact[c] == usize::MAX {
                compact[c] = players.len();
                players.push(c);
            }
        }
    }
    let n = players.len();
    if n > limit {
        return Err(TooManyChannels { channels: n, limit });
    }
    let size = 1usize << n;
    let mut conv = vec![0.0f64; size];
    let mut value = vec![0.0f64; size];
    for j in journeys
        .paths
        .iter()
        .filter(|j| j.conversions != 0.0 || j.value != 0.0)
    {
        let mut mask = 0usize;
        for &c in &j.channels {
            mask |= 1 << compact[c as usize];
        }
        if mask != 0 {
            conv[mask] += j.conversions;
            value[mask] += j.value;
        }
    }
    // Zeta transform: v(S) = Σ_{T ⊆ S} w(T).
    for i in 0..n {
        let bit = 1 << i;
        for s in 0..size {
            if s & bit != 0 {
                conv[s] += conv[s ^ bit];
                value[s] += value[s ^ bit];
            }
        }
    }
    // coef[k] = k!(n−k−1)!/n!, computed in floating point without factorial overflow.
    let coef: Vec<f64> = (0..n)
        .map(|k| {
            // 1 / (n · C(n−1, k))
            let mut c = 1.0f64;
            for t in 0..k {
                c *= (n - 1 - t) as f64 / (t + 1) as f64;
            }
            1.0 / (n as f64 * c)
        })
        .collect();
    let mut out = vec![Credit::default(); journeys.channels.len()];
    for (i, &player) in players.iter().enumerate() {
        let bit = 1 << i;
        let (mut phi_c, mut phi_v) = (0.0, 0.0);
        for s in 0..size {
            if s & bit == 0 {
                let k = s.count_ones() as usize;
                phi_c += coef[k] * (conv[s | bit] - conv[s]);
                phi_v += coef[k] * (value[s | bit] - value[s]);
            }
        }
        out[player] = Credit {
            conversions: phi_c,
            value: phi_v,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::models::Journey;

    fn j(ch: &[u32], conv: f64) -> Journey {
        Journey {
            channels: ch.to_vec(),
            ages_days: vec![0.0; ch.len()],
            conversions: conv,
            value: conv * 3.0,
            nulls: 0.0,
        }
    }

    #[test]
    fn equals_equal_split_over_distinct_channels() {
        let js = Journeys {
            channels: (0..5).map(|i| format!("c{i}")).collect(),
            paths: vec![
                j(&[0, 1, 0], 1.0),
                j(&[2], 2.0),
                j(&[1, 2, 3], 1.0),
                j(&[3, 3], 1.0),
                j(&[4], 0.0),
            ],
        };
        let got = shapley(&js, 15).expect("few channels");
        let expected = [0.5, 0.5 + 1.0 / 3.0, 2.0 + 1.0 / 3.0, 1.0 / 3.0 + 1.0, 0.0];
        for (g, e) in got.iter().zip(expected) {
            assert!((g.conversions - e).abs() < 1e-12, "{got:?}");
            assert!((g.value - 3.0 * e).abs() < 1e-12, "{got:?}");
        }
        let total: f64 = got.iter().map(|c| c.conversions).sum();
        assert!((total - 5.0).abs() < 1e-12);
    }

    #[test]
    fn too_many_channels_is_an_error() {
        let js = Journeys {
            channels: (0..4).map(|i| format!("c{i}")).collect(),
            paths: vec![j(&[0, 1, 2, 3], 1.0)],
        };
        assert_eq!(
            shapley(&js, 3),
            Err(TooManyChannels {
                channels: 4,
                limit: 3
            })
        );
    }
}
