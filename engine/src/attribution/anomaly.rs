//! Robust outlier detection by median absolute deviation (Iglewicz and Hoaglin's modified
//! z-score), used for conversion values and daily conversion volumes.

/// Median of a slice (sorted copy); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

/// For each value, whether it is an outlier: `0.6745 · |x − median| / MAD > threshold`.
/// When the MAD is 0 (more than half the values equal), the mean absolute deviation scaled by
/// 1.2533 stands in for it (so a lone departure from a constant series is still caught); when
/// that is 0 too, nothing is flagged. Fewer than `min_samples` values flag nothing.
pub fn mad_outliers(values: &[f64], threshold: f64, min_samples: usize) -> Vec<bool> {
    let n = values.len();
    if n == 0 || n < min_samples.max(1) {
        return vec![false; n];
    }
    let Some(med) = median(values) else {
        return vec![false; n];
    };
    let dev: Vec<f64> = values.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&dev).unwrap_or(0.0);
    let scale = if mad > 0.0 {
        mad / 0.6745
    } else {
        let mean_ad = dev.iter().sum::<f64>() / n as f64;
        mean_ad * 1.253_314
    };
    if scale <= 0.0 {
        return vec![false; n];
    }
    dev.iter().map(|d| d / scale > threshold).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_huge_value_is_flagged() {
        let v = [100.0, 110.0, 95.0, 105.0, 98.0, 102.0, 5000.0];
        let f = mad_outliers(&v, 3.5, 5);
        assert_eq!(f, vec![false, false, false, false, false, false, true]);
    }

    #[test]
    fn constant_series_with_one_departure() {
        let v = [1.0, 1.0, 1.0, 1.0, 1.0, 9.0];
        assert_eq!(
            mad_outliers(&v, 3.5, 5),
            vec![false, false, false, false, false, true]
        );
        assert_eq!(mad_outliers(&[1.0; 6], 3.5, 5), vec![false; 6]);
    }

    #[test]
    fn too_few_samples_flag_nothing() {
        assert_eq!(mad_outliers(&[1.0, 1000.0], 3.5, 5), vec![false, false]);
    }
}
