//! The Markov-chain model: removal effects computed exactly from absorption probabilities.
//!
//! Every journey is a walk `start → s1 → … → sn → conversion | null`, where a state is the last
//! `order` channels seen (fewer at the beginning of a walk, as in the `channelattribution`
//! package). Transition probabilities are the observed transition counts, normalised per state:
//! a converting journey adds `conversions` to its last step into `conversion`, a non-converting
//! one adds `nulls` into `null`, and every step before counts `conversions + nulls`.
//!
//! P(conversion) is the absorption probability into `conversion` from `start`, solved from the
//! linear system `x = Q·x + r` (Q: transient-to-transient probabilities, r: probability of
//! stepping into `conversion`). Removing channel k sends every state that contains k to `null`
//! (x = 0 there). The removal effect is `RE_k = 1 − P_without_k / P` and the conversion credits
//! are `conversions × RE_k / Σ RE`.
//!
//! Value is credited by its own removal effects, as the `ChannelAttribution` package does: its
//! simulated walks draw, on reaching `conversion`, a value from the values of the conversions
//! whose journeys ended in the state the walk left, and its value removal effect is the share
//! of simulated value carried by walks through k. Exactly: a step into `conversion` from state
//! s is worth the mean value of the conversions observed from s, so the chain's expected value
//! per journey V solves `y = Q·y + r_v` with `r_v[s] = (value of conversions from s) /
//! (observed steps out of s)`. `RE^v_k = 1 − V_without_k / V`, and value credits are
//! `total value × RE^v_k / Σ RE^v`. A channel that leads to high-value conversions thus gets
//! more value than its share of conversions; when every conversion has the same value the two
//! shares are equal. Effects below 0 (removing the channel would raise P or V, possible with
//! negative values such as refunds) count as 0; when no value effect is positive (V ≤ 0), value
//! follows the conversion shares.
//!
//! Systems of up to [`DENSE_LIMIT`] states are solved by Gaussian elimination with partial
//! pivoting; larger ones (high orders over many channels) by Gauss–Seidel sweeps until the
//! largest change is below 1e-14, which is exact to floating-point precision for these
//! absorbing chains.

use super::models::{Credit, Journeys};
use std::collections::HashMap;

/// Largest number of transient states solved by dense elimination.
pub const DENSE_LIMIT: usize = 600;

/// Result of the Markov model.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovResult {
    /// The order of the chain that was fitted (the requested one, or 1 with 65,535 channels or
    /// more).
    pub order: usize,
    /// Credits by channel id.
    pub credits: Vec<Credit>,
    /// Removal effect on conversions by channel id: `1 − P_without_k / P`.
    pub removal_effects: Vec<f64>,
    /// Removal effect on conversion value by channel id: `1 − V_without_k / V`.
    pub value_removal_effects: Vec<f64>,
    /// P(conversion) of the full chain (from `start`).
    pub conversion_probability: f64,
    /// Expected conversion value per journey of the full chain (from `start`).
    pub expected_value: f64,
}

/// Fit the chain of the given order (1 to 4; with 65,535 channels or more, 1) and compute
/// credits.
pub fn markov(journeys: &Journeys, order: usize) -> MarkovResult {
    let n_channels = journeys.channels.len();
    // States pack up to four channel ids into 16 bits each; beyond 65,534 channels only the
    // first-order chain (one id per key) is representable.
    let order = if n_channels >= 0xFFFF {
        1
    } else {
        order.clamp(1, 4)
    };
    // State 0 = start; others are keys of up to `order` channels, 16 bits each (id + 1).
    let mut index: HashMap<u64, u32> = HashMap::new();
    let mut keys: Vec<u64> = vec![0];
    index.insert(0, 0);
    // Sparse transition counts between transient states, and counts into conversion / null.
    let mut trans: HashMap<(u32, u32), f64> = HashMap::new();
    let mut to_conv: Vec<f64> = vec![0.0];
    let mut to_conv_value: Vec<f64> = vec![0.0];
    let mut to_null: Vec<f64> = vec![0.0];
    let mask: u64 = if order >= 4 {
        u64::MAX
    } else {
        (1u64 << (16 * order)) - 1
    };
    let mut total_conv = 0.0;
    let mut total_value = 0.0;
    for j in &journeys.paths {
        let weight = j.conversions + j.nulls;
        if weight <= 0.0 || j.channels.is_empty() {
            continue;
        }
        total_conv += j.conversions;
        total_value += j.value;
        let mut key: u64 = 0;
        let mut from: u32 = 0;
        for &c in &j.channels {
            key = if order == 1 {
                u64::from(c) + 1
            } else {
                ((key << 16) | (u64::from(c) + 1)) & mask
            };
            let next = len_u32(keys.len());
            let to = *index.entry(key).or_insert_with(|| {
                keys.push(key);
                to_conv.push(0.0);
                to_conv_value.push(0.0);
                to_null.push(0.0);
                next
            });
            *trans.entry((from, to)).or_insert(0.0) += weight;
            from = to;
        }
        to_conv[from as usize] += j.conversions;
        to_conv_value[from as usize] += j.value;
        to_null[from as usize] += j.nulls;
    }
    let n = keys.len();
    // Row-normalised sparse rows.
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
    let mut out_total: Vec<f64> = (0..n).map(|i| to_conv[i] + to_null[i]).collect();
    for (&(f, _), &w) in &trans {
        out_total[f as usize] += w;
    }
    let mut trans_sorted: Vec<_> = trans.into_iter().collect();
    trans_sorted.sort_by_key(|&(k, _)| k);
    for ((f, t), w) in trans_sorted {
        rows[f as usize].push((t, w / out_total[f as usize]));
    }
    // Per state: the probability of stepping into `conversion`, and the value that step is
    // worth on average (value of the conversions from the state / steps out of it).
    let rhs: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            if out_total[i] > 0.0 {
                [to_conv[i] / out_total[i], to_conv_value[i] / out_total[i]]
            } else {
                [0.0, 0.0]
            }
        })
        .collect();
    let contains = |key: u64, c: usize| -> bool {
        let want = c as u64 + 1;
        if order == 1 {
            return key == want;
        }
        let mut k = key;
        while k != 0 {
            if k & 0xFFFF == want {
                return true;
            }
            k >>= 16;
        }
        false
    };
    let removed_none = vec![false; n];
    let [p, v] = absorption_from_start(&rows, &rhs, &removed_none);
    let mut effects = vec![0.0; n_channels];
    let mut value_effects = vec![0.0; n_channels];
    for (c, (effect, value_effect)) in effects.iter_mut().zip(&mut value_effects).enumerate() {
        let removed: Vec<bool> = keys.iter().map(|&k| contains(k, c)).collect();
        if !removed.iter().any(|&b| b) || (p <= 0.0 && v <= 0.0) {
            continue;
        }
        let [pk, vk] = absorption_from_start(&rows, &rhs, &removed);
        if p > 0.0 {
            *effect = (1.0 - pk / p).max(0.0);
        }
        if v > 0.0 {
            *value_effect = (1.0 - vk / v).max(0.0);
        }
    }
    let sum: f64 = effects.iter().sum();
    let value_sum: f64 = value_effects.iter().sum();
    let credits = effects
        .iter()
        .zip(&value_effects)
        .map(|(&e, &ev)| Credit {
            conversions: if sum > 0.0 { total_conv * e / sum } else { 0.0 },
            value: if value_sum > 0.0 {
                total_value * ev / value_sum
            } else if sum > 0.0 {
                total_value * e / sum
            } else {
                0.0
            },
        })
        .collect();
    MarkovResult {
        order,
        credits,
        removal_effects: effects,
        value_removal_effects: value_effects,
        conversion_probability: p,
        expected_value: v,
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Absorption into `conversion` from state 0, with `removed` states sent to null, for both
/// right-hand sides at once: `[P(conversion), expected value]` when `rhs[i]` is `[probability,
/// value]` of stepping from state i into `conversion`.
fn absorption_from_start(rows: &[Vec<(u32, f64)>], rhs: &[[f64; 2]], removed: &[bool]) -> [f64; 2] {
    let n = rows.len();
    if n <= DENSE_LIMIT {
        // (I − Q) X = [r r_v] over the states not removed.
        let live: Vec<usize> = (0..n).filter(|&i| !removed[i]).collect();
        let mut pos = vec![usize::MAX; n];
        for (k, &i) in live.iter().enumerate() {
            pos[i] = k;
        }
        let m = live.len();
        if m == 0 || removed[0] {
            return [0.0, 0.0];
        }
        let w = m + 2;
        let mut a = vec![0.0f64; m * w];
        for (k, &i) in live.iter().enumerate() {
            a[k * w + k] = 1.0;
            for &(t, p) in &rows[i] {
                let t = t as usize;
                if !removed[t] {
                    a[k * w + pos[t]] -= p;
                }
            }
            a[k * w + m] = rhs[i][0];
            a[k * w + m + 1] = rhs[i][1];
        }
        solve_in_place(&mut a, m).map_or([0.0, 0.0], |x| x[0])
    } else {
        let mut x = vec![[0.0f64; 2]; n];
        for _ in 0..1_000_000 {
            let mut delta: f64 = 0.0;
            for i in 0..n {
                if removed[i] {
                    continue;
                }
                let mut s = rhs[i];
                let mut self_p = 0.0;
                for &(t, p) in &rows[i] {
                    let t = t as usize;
                    if t == i {
                        self_p += p;
                    } else if !removed[t] {
                        s[0] += p * x[t][0];
                        s[1] += p * x[t][1];
                    }
                }
                let v = if self_p < 1.0 {
                    [s[0] / (1.0 - self_p), s[1] / (1.0 - self_p)]
                } else {
                    [0.0, 0.0]
                };
                // The value column is relative to its own scale (values may be large).
                let scale = x[i][1].abs().max(v[1].abs()).max(1.0);
                delta = delta
                    .max((v[0] - x[i][0]).abs())
                    .max((v[1] - x[i][1]).abs() / scale);
                x[i] = v;
            }
            if delta < 1e-14 {
                break;
            }
        }
        x[0]
    }
}

/// Gaussian elimination with partial pivoting on an m × (m+2) augmented matrix (two
/// right-hand sides); returns the two solution columns per row.
fn solve_in_place(a: &mut [f64], m: usize) -> Option<Vec<[f64; 2]>> {
    let w = m + 2;
    for col in 0..m {
        let pivot =
            (col..m).max_by(|&x, &y| a[x * w + col].abs().total_cmp(&a[y * w + col].abs()))?;
        if a[pivot * w + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..w {
                a.swap(pivot * w + k, col * w + k);
            }
        }
        let d = a[col * w + col];
        for row in 0..m {
            if row == col {
                continue;
            }
            let f = a[row * w + col] / d;
            if f != 0.0 {
                for k in col..w {
                    a[row * w + k] -= f * a[col * w + k];
                }
            }
        }
    }
    Some(
        (0..m)
            .map(|i| {
                let d = a[i * w + i];
                [a[i * w + m] / d, a[i * w + m + 1] / d]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::models::Journey;

    fn path(ch: &[u32], conv: f64, nulls: f64) -> Journey {
        Journey {
            channels: ch.to_vec(),
            ages_days: vec![0.0; ch.len()],
            conversions: conv,
            value: conv * 10.0,
            nulls,
        }
    }

    #[test]
    fn textbook_example_by_hand() {
        // Paths: a>b converts, a does not, b converts.
        // start→a 2/3, start→b 1/3; a→b 1/2, a→null 1/2; b→conv 1.
        // P = 2/3·1/2 + 1/3 = 2/3. Without a: P = 1/3 → RE_a = 1/2. Without b: P = 0 → RE_b = 1.
        // Credits of 2 conversions: a = 2·(1/2)/(3/2) = 2/3, b = 4/3.
        let js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![
                path(&[0, 1], 1.0, 0.0),
                path(&[0], 0.0, 1.0),
                path(&[1], 1.0, 0.0),
            ],
        };
        let m = markov(&js, 1);
        assert!((m.conversion_probability - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.removal_effects[0] - 0.5).abs() < 1e-12);
        assert!((m.removal_effects[1] - 1.0).abs() < 1e-12);
        assert!((m.credits[0].conversions - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.credits[1].conversions - 4.0 / 3.0).abs() < 1e-12);
        assert!((m.credits[1].value - 40.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn iterative_solver_agrees_with_dense_elimination() {
        // A chain with loops, solved both ways.
        let rows = vec![
            vec![(1, 0.5), (2, 0.5)],
            vec![(1, 0.3), (2, 0.4)],
            vec![(1, 0.2)],
        ];
        let r = vec![[0.0, 0.0], [0.1, 25.0], [0.5, 4000.0]];
        let removed = vec![false; 3];
        let dense = absorption_from_start(&rows, &r, &removed);
        // Force the iterative branch by padding with unreachable states.
        let mut big = rows.clone();
        let mut rbig = r.clone();
        big.resize(DENSE_LIMIT + 5, Vec::new());
        rbig.resize(DENSE_LIMIT + 5, [0.0, 0.0]);
        let iterative = absorption_from_start(&big, &rbig, &vec![false; DENSE_LIMIT + 5]);
        assert!(
            (dense[0] - iterative[0]).abs() < 1e-12,
            "{dense:?} vs {iterative:?}"
        );
        assert!(
            (dense[1] - iterative[1]).abs() < 1e-9 * dense[1],
            "{dense:?} vs {iterative:?}"
        );
        assert!(dense[0] > 0.0 && dense[0] < 1.0);
        assert!(dense[1] > 0.0);
    }

    #[test]
    fn value_is_credited_by_value_removal_effects() {
        // a converts alone for 100; b converts alone for 10; a>b converts for 40; b alone once
        // does not convert.
        // start→a ½, start→b ½; a→conv ½ (value 100 / 2 steps = 50), a→b ½;
        // b→conv ⅔ (value (10 + 40) / 3 steps = 50/3), b→null ⅓.
        // P = ½(½ + ½·⅔) + ½·⅔ = ¾. Without a: ½·⅔ = ⅓ → RE_a = 5/9. Without b: ¼ → RE_b = ⅔.
        // V = ½(50 + ½·50/3) + ½·50/3 = 37.5. Without a: 25/3 → RE^v_a = 7/9. Without b: 25 →
        // RE^v_b = ⅓. Value credits of 150: a = 150·(7/9)/(10/9) = 105, b = 45 (conversions ×
        // average value would give a 3·(5/9)/(11/9)·50 = 68.18…).
        let js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![
                Journey {
                    value: 100.0,
                    ..path(&[0], 1.0, 0.0)
                },
                Journey {
                    value: 10.0,
                    ..path(&[1], 1.0, 0.0)
                },
                Journey {
                    value: 40.0,
                    ..path(&[0, 1], 1.0, 0.0)
                },
                path(&[1], 0.0, 1.0),
            ],
        };
        let m = markov(&js, 1);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * b.abs().max(1.0);
        assert!(close(m.conversion_probability, 0.75), "{m:?}");
        assert!(close(m.expected_value, 37.5), "{m:?}");
        assert!(close(m.removal_effects[0], 5.0 / 9.0), "{m:?}");
        assert!(close(m.removal_effects[1], 2.0 / 3.0), "{m:?}");
        assert!(close(m.value_removal_effects[0], 7.0 / 9.0), "{m:?}");
        assert!(close(m.value_removal_effects[1], 1.0 / 3.0), "{m:?}");
        assert!(close(m.credits[0].conversions, 15.0 / 11.0), "{m:?}");
        assert!(close(m.credits[1].conversions, 18.0 / 11.0), "{m:?}");
        assert!(close(m.credits[0].value, 105.0), "{m:?}");
        assert!(close(m.credits[1].value, 45.0), "{m:?}");
        // The second-order chain of the same data also hands out exactly the total value.
        let m2 = markov(&js, 2);
        assert_eq!(m2.order, 2);
        let total: f64 = m2.credits.iter().map(|c| c.value).sum();
        assert!(close(total, 150.0), "{m2:?}");
    }

    #[test]
    fn equal_values_give_equal_value_and_conversion_shares() {
        // Every conversion worth 10: value credits are conversions × 10.
        let js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![
                path(&[0, 1], 1.0, 0.0),
                path(&[0], 0.0, 1.0),
                path(&[1], 1.0, 0.0),
                path(&[1, 0], 2.0, 1.0),
            ],
        };
        let m = markov(&js, 1);
        for (k, c) in m.credits.iter().enumerate() {
            assert!((c.value - 10.0 * c.conversions).abs() < 1e-9, "{m:?}");
            assert!(
                (m.value_removal_effects[k] - m.removal_effects[k]).abs() < 1e-12,
                "{m:?}"
            );
        }
        assert!((m.expected_value - 10.0 * m.conversion_probability).abs() < 1e-12);
    }

    #[test]
    fn value_without_a_positive_effect_follows_conversions() {
        // Only refunds: V < 0, so no value effect is positive; value follows conversion shares.
        let js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![
                Journey {
                    value: -30.0,
                    ..path(&[0, 1], 1.0, 0.0)
                },
                Journey {
                    value: -10.0,
                    ..path(&[1], 1.0, 0.0)
                },
            ],
        };
        let m = markov(&js, 1);
        assert!(m.expected_value < 0.0);
        assert_eq!(m.value_removal_effects, vec![0.0, 0.0]);
        let sum: f64 = m.removal_effects.iter().sum();
        for (k, c) in m.credits.iter().enumerate() {
            assert!((c.value - (-40.0) * m.removal_effects[k] / sum).abs() < 1e-9);
        }
    }

    #[test]
    fn second_order_states_remember_two_channels() {
        // a>b converts, b>b does not: order 2 distinguishes (a,b) from (b,b).
        let js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![path(&[0, 1], 1.0, 0.0), path(&[1, 1], 0.0, 1.0)],
        };
        let m = markov(&js, 2);
        // start→a 1/2 → (a,b) → conv; start→b 1/2 → (b,b) → null. P = 1/2.
        assert!((m.conversion_probability - 0.5).abs() < 1e-12);
        // Both a and b are needed for the only converting path: RE = 1 each.
        assert!((m.removal_effects[0] - 1.0).abs() < 1e-12);
        assert!((m.removal_effects[1] - 1.0).abs() < 1e-12);
        assert!((m.credits[0].conversions - 0.5).abs() < 1e-12);
    }

    #[test]
    fn no_conversions_credit_nothing() {
        let js = Journeys {
            channels: vec!["a".into()],
            paths: vec![path(&[0], 0.0, 3.0)],
        };
        let m = markov(&js, 1);
        assert_eq!(m.credits[0], Credit::default());
    }
}
