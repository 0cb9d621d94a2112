//! Summaries of a figure over the rounds of a run: its median, its quartiles, and how far the
//! median itself can be trusted.
//!
//! A shared machine makes every round different, so one number per round says little and the
//! report summarises many. The median and the quartiles describe the rounds; the interval of
//! [`median_interval`] describes the median: it answers "could the true median ratio of two
//! servers be 1.03 rather than the 1.01 this run found?", which the quartiles do not.

/// The median of `values` (with an even count, the mean of the middle two); NaN if empty.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median and the quartiles (25% and 75%, linearly interpolated) of `values`.
pub fn median_quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        let pos = q * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    (at(0.5), at(0.25), at(0.75))
}

/// A 95% confidence interval for the median of whatever `values` were drawn from, assuming
/// only that the rounds are independent: no shape of distribution, so outlying rounds do not
/// distort it. None with fewer than 6 values, where no interval between two of them reaches 95%.
///
/// The classic order-statistic interval: each value falls below the true median with
/// probability one half, so the number below it is binomial (n, 1/2). The k-th smallest value
/// lies above the median only if fewer than k do, and the interval from the k-th smallest to
/// the k-th largest misses the median with probability 2 P(B < k); k is the largest with that
/// at most 5%. With 40 rounds it runs from the 14th to the 27th value.
pub fn median_interval(values: &[f64]) -> Option<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // P(B = j) in logarithms, so that it does not underflow for long runs.
    let mut log_p = -(n as f64) * std::f64::consts::LN_2;
    let (mut below, mut k) = (0.0, 0);
    for j in 0..n {
        below += log_p.exp(); // P(B <= j)
        if below > 0.025 {
            break;
        }
        k = j + 1;
        log_p += ((n - j) as f64 / (j + 1) as f64).ln();
    }
    (k > 0).then(|| (v[k - 1], v[n - k]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quartiles() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median_quartiles(&[4.0, 1.0, 3.0, 2.0, 5.0]), (3.0, 2.0, 4.0));
    }

    #[test]
    fn the_median_interval_takes_the_textbook_order_statistics() {
        let ranks = |n: usize| (1..=n).rev().map(|i| i as f64).collect::<Vec<_>>();
        // Too few rounds for 95%: all five together miss the median with probability 1/16.
        assert_eq!(median_interval(&ranks(5)), None);
        assert_eq!(median_interval(&ranks(6)), Some((1.0, 6.0)));
        // The tables' values: 10 rounds, the 2nd to the 9th; 40, the 14th to the 27th.
        assert_eq!(median_interval(&ranks(10)), Some((2.0, 9.0)));
        assert_eq!(median_interval(&ranks(40)), Some((14.0, 27.0)));
        // Long runs narrow it to about the median plus or minus one standard error.
        let (lo, hi) = median_interval(&ranks(2000)).unwrap();
        assert!((lo - 956.0).abs() <= 1.0 && (hi - 1045.0).abs() <= 1.0, "{lo} {hi}");
    }
}
