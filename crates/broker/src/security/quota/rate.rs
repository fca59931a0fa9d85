//! A rate over sample windows, as Kafka's `Rate` over a `WindowedSum` (`SampledStat`): values are
//! summed into `samples` windows of `window_ms` each (plus one that overlaps the monitored span),
//! a window is recycled once complete, a window with no event for `samples * window_ms` is reset,
//! and the rate divides the sum by the elapsed span, taken as at least `samples - 1` whole windows
//! (so that a burst right after a quiet period is not measured over a few milliseconds).

/// One sample window.
#[derive(Debug, Clone)]
struct Sample {
    value: f64,
    start_ms: u64,
    last_event_ms: u64,
}

impl Sample {
    fn new(now_ms: u64) -> Sample {
        Sample {
            value: 0.0,
            start_ms: now_ms,
            last_event_ms: now_ms,
        }
    }

    fn reset(&mut self, now_ms: u64) {
        *self = Sample::new(now_ms);
    }
}

/// A sampled rate in units per second (Kafka's `Rate` with `TimeUnit.SECONDS`).
#[derive(Debug, Clone)]
pub struct SampledRate {
    samples: Vec<Sample>,
    current: usize,
    num_samples: usize,
    window_ms: u64,
}

impl SampledRate {
    /// A rate over `num_samples` windows (`quota.window.num`) of `window_ms` each
    /// (`quota.window.size.seconds`).
    pub fn new(num_samples: usize, window_ms: u64) -> SampledRate {
        assert!(num_samples >= 1 && window_ms >= 1, "a rate needs a window");
        SampledRate {
            samples: Vec::with_capacity(num_samples + 1),
            current: 0,
            num_samples,
            window_ms,
        }
    }

    fn current(&mut self, now_ms: u64) -> &mut Sample {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        &mut self.samples[self.current]
    }

    /// Adds `value` (negative to take back a recorded value) at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let window_ms = self.window_ms;
        let complete = {
            let s = self.current(now_ms);
            now_ms.saturating_sub(s.start_ms) >= window_ms
        };
        if complete {
            // One extra slot for the sample that overlaps the start of the monitored span.
            self.current = (self.current + 1) % (self.num_samples + 1);
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now_ms));
            } else {
                self.samples[self.current].reset(now_ms);
            }
        }
        let s = &mut self.samples[self.current];
        s.value += value;
        s.last_event_ms = now_ms;
    }

    /// Resets the samples with no event within the monitored span.
    fn purge_obsolete(&mut self, now_ms: u64) {
        let expire_ms = self.num_samples as u64 * self.window_ms;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.last_event_ms) >= expire_ms {
                s.reset(now_ms);
            }
        }
    }

    /// The span the rate is measured over at `now_ms`, in ms (Kafka's `Rate.windowSize`).
    pub fn window_size_ms(&mut self, now_ms: u64) -> u64 {
        self.purge_obsolete(now_ms);
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / self.window_ms;
        let min_full = self.num_samples as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate at `now_ms`, per second.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        self.purge_obsolete(now_ms);
        let sum: f64 = self.samples.iter().map(|s| s.value).sum();
        sum / (self.window_size_ms(now_ms) as f64 / 1000.0)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: the delay that brings the observed rate back to the
/// bound, assuming nothing more is recorded: with O observed over a span W and bound T,
/// O * W / (W + X) = T gives X = (O - T) / T * W.
pub fn throttle_time_ms(observed: f64, bound: f64, window_size_ms: u64) -> u64 {
    if observed <= bound || bound <= 0.0 {
        return 0;
    }
    ((observed - bound) / bound * window_size_ms as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_rate_is_measured_over_the_full_span_but_one_window() {
        // 11 windows of 1 s: 10 s is assumed even after 100 ms.
        let mut r = SampledRate::new(11, 1000);
        r.record(1000.0, 10_000);
        assert_eq!(r.window_size_ms(10_100), 10_100 - 10_000 + 10_000);
        assert!((r.measure(10_000) - 100.0).abs() < 1e-9);
        // Kafka's example: O = 2T over W needs W more to come down to T.
        assert_eq!(throttle_time_ms(200.0, 100.0, 10_000), 10_000);
        assert_eq!(throttle_time_ms(100.0, 100.0, 10_000), 0);
    }

    #[test]
    fn windows_roll_and_old_samples_expire() {
        let mut r = SampledRate::new(3, 1000);
        for t in 0..5u64 {
            r.record(300.0, t * 1000);
        }
        // Four slots (3 windows and the overlapping one): the first was recycled at 4000, and
        // at 4500 the one last written at 1000 is older than 3 windows and is reset, leaving
        // the samples started at 2000, 3000 and 4000: 900 over 2500 ms.
        let rate = r.measure(4_500);
        assert!((rate - 900.0 / 2.5).abs() < 1e-9, "{rate}");
        // After a long pause every sample is obsolete: the rate is 0.
        assert_eq!(r.measure(100_000), 0.0);
    }

    #[test]
    fn a_recorded_value_can_be_taken_back() {
        let mut r = SampledRate::new(11, 1000);
        r.record(5000.0, 0);
        r.record(-5000.0, 0);
        assert_eq!(r.measure(10), 0.0);
    }
}
