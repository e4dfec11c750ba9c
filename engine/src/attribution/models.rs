//! Credit models over journeys: the five heuristic models (per-journey weights) and the channel
//! tables they add up to. The data-driven models live in `markov.rs` and `shapley.rs`.

use crate::spec::attribution::{ModelKind, PositionBasedSettings};

/// One path of touches, oldest first, and what it led to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Journey {
    /// Channel ids (indexes into [`Journeys::channels`]), oldest touch first.
    pub channels: Vec<u32>,
    /// For each touch, the time from the touch to the conversion in days (≥ 0). Ignored for
    /// non-converting journeys.
    pub ages_days: Vec<f64>,
    /// Conversions this path led to (usually 1; 0 for a path that did not convert).
    pub conversions: f64,
    /// Conversion value this path led to.
    pub value: f64,
    /// Times this path ended without a conversion (usually 0 or 1).
    pub nulls: f64,
}

/// Every journey of a run, and the channel names their ids point into.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Journeys {
    /// Channel names by id.
    pub channels: Vec<String>,
    /// The journeys.
    pub paths: Vec<Journey>,
}

impl Journeys {
    /// Id of a channel name, adding it when new.
    pub fn channel_id(&mut self, name: &str) -> u32 {
        match self.channels.iter().position(|c| c == name) {
            Some(i) => i as u32,
            None => {
                self.channels.push(name.to_string());
                (self.channels.len() - 1) as u32
            }
        }
    }
}

/// Credited conversions and value of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Credit {
    /// Credited conversions (fractional).
    pub conversions: f64,
    /// Credited value.
    pub value: f64,
}

/// Parameters of the heuristic models.
#[derive(Debug, Clone, PartialEq)]
pub struct HeuristicParams {
    /// Half-life of the time-decay model, in days.
    pub half_life_days: f64,
    /// Shares of the position-based model.
    pub position: PositionBasedSettings,
}

impl Default for HeuristicParams {
    fn default() -> Self {
        HeuristicParams {
            half_life_days: 7.0,
            position: PositionBasedSettings::default(),
        }
    }
}

/// Whether a model is one of the per-journey heuristic models.
pub fn is_heuristic(kind: ModelKind) -> bool {
    !matches!(kind, ModelKind::Markov | ModelKind::Shapley)
}

/// The share of one conversion each touch of a journey gets under a heuristic model; the shares
/// sum to 1 (or the slice is empty). `out` is cleared and refilled, one entry per touch.
///
/// Ties in time keep the journey's order (the input order of the touches), so "first" is the
/// earliest touch and, among equally early ones, the one read first.
pub fn heuristic_weights(
    kind: ModelKind,
    journey: &Journey,
    params: &HeuristicParams,
    out: &mut Vec<f64>,
) {
    out.clear();
    let n = journey.channels.len();
    if n == 0 {
        return;
    }
    out.resize(n, 0.0);
    match kind {
        ModelKind::FirstTouch => out[0] = 1.0,
        ModelKind::LastTouch => out[n - 1] = 1.0,
        ModelKind::Linear => out.iter_mut().for_each(|w| *w = 1.0 / n as f64),
        ModelKind::TimeDecay => {
            let mut total = 0.0;
            for (w, age) in out.iter_mut().zip(&journey.ages_days) {
                *w = (-age.max(0.0) / params.half_life_days).exp2();
                total += *w;
            }
            if total > 0.0 && total.is_finite() {
                out.iter_mut().for_each(|w| *w /= total);
            } else {
                // Every weight underflowed (touches many half-lives old): fall back to linear.
                out.iter_mut().for_each(|w| *w = 1.0 / n as f64);
            }
        }
        ModelKind::PositionBased => match n {
            1 => out[0] = 1.0,
            2 => {
                out[0] = 0.5;
                out[1] = 0.5;
            }
            _ => {
                let (first, last) = (params.position.first, params.position.last);
                let middle = (1.0 - first - last) / (n - 2) as f64;
                out.iter_mut().for_each(|w| *w = middle);
                out[0] = first;
                out[n - 1] = last;
            }
        },
        ModelKind::Markov | ModelKind::Shapley => {
            // Not per-journey models: the caller never asks; give linear rather than nothing.
            out.iter_mut().for_each(|w| *w = 1.0 / n as f64)
        }
    }
}

/// The channel table of a heuristic model: each converting journey's conversions and value
/// split by [`heuristic_weights`]. Indexed by channel id.
pub fn heuristic_table(
    kind: ModelKind,
    journeys: &Journeys,
    params: &HeuristicParams,
) -> Vec<Credit> {
    let mut table = vec![Credit::default(); journeys.channels.len()];
    let mut w = Vec::new();
    for j in &journeys.paths {
        if j.conversions == 0.0 && j.value == 0.0 {
            continue;
        }
        heuristic_weights(kind, j, params, &mut w);
        for (&c, &share) in j.channels.iter().zip(&w) {
            let cell = &mut table[c as usize];
            cell.conversions += share * j.conversions;
            cell.value += share * j.value;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journey(channels: &[u32], ages: &[f64]) -> Journey {
        Journey {
            channels: channels.to_vec(),
            ages_days: ages.to_vec(),
            conversions: 1.0,
            value: 100.0,
            nulls: 0.0,
        }
    }

    fn check(kind: ModelKind, j: &Journey, expected: &[f64]) {
        let mut w = Vec::new();
        heuristic_weights(kind, j, &HeuristicParams::default(), &mut w);
        assert_eq!(w.len(), expected.len(), "{kind:?}");
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{kind:?}: {w:?} != {expected:?}");
        }
    }

    #[test]
    fn single_touch_gets_everything_in_every_model() {
        let j = journey(&[0], &[3.0]);
        for kind in [
            ModelKind::FirstTouch,
            ModelKind::LastTouch,
            ModelKind::Linear,
            ModelKind::TimeDecay,
            ModelKind::PositionBased,
        ] {
            check(kind, &j, &[1.0]);
        }
    }

    #[test]
    fn time_decay_halves_per_half_life() {
        // 14, 7 and 0 days before: weights 1/4, 1/2, 1 → normalised 1/7, 2/7, 4/7.
        let j = journey(&[0, 1, 2], &[14.0, 7.0, 0.0]);
        check(ModelKind::TimeDecay, &j, &[1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0]);
    }

    #[test]
    fn position_based_two_touches_split_evenly_and_middle_shares_twenty_percent() {
        check(
            ModelKind::PositionBased,
            &journey(&[0, 1], &[1.0, 0.0]),
            &[0.5, 0.5],
        );
        check(
            ModelKind::PositionBased,
            &journey(&[0, 1, 2, 3], &[3.0, 2.0, 1.0, 0.0]),
            &[0.4, 0.1, 0.1, 0.4],
        );
    }

    #[test]
    fn repeated_channels_add_up_in_the_table() {
        let mut js = Journeys {
            channels: vec!["a".into(), "b".into()],
            paths: vec![journey(&[0, 1, 0], &[2.0, 1.0, 0.0])],
        };
        js.paths.push(Journey {
            channels: vec![1],
            ages_days: vec![0.0],
            conversions: 0.0,
            value: 0.0,
            nulls: 1.0,
        });
        let t = heuristic_table(ModelKind::Linear, &js, &HeuristicParams::default());
        assert!((t[0].conversions - 2.0 / 3.0).abs() < 1e-12);
        assert!((t[1].conversions - 1.0 / 3.0).abs() < 1e-12);
        assert!((t[0].value - 200.0 / 3.0).abs() < 1e-9);
        let t = heuristic_table(ModelKind::PositionBased, &js, &HeuristicParams::default());
        assert!((t[0].conversions - 0.8).abs() < 1e-12);
        assert!((t[1].conversions - 0.2).abs() < 1e-12);
    }
}
