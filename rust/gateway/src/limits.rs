//! Per-connection limits: the token bucket of the message rate.

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket { rate, burst, tokens: burst, last: Instant::now() }
    }

    /// Takes `n` tokens if there are that many.
    pub fn take(&mut self, n: f64) -> bool {
        self.take_at(n, Instant::now())
    }

    /// [`TokenBucket::take`] at `now` (the messages of one frame arrive at one time).
    pub fn take_at(&mut self, n: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_spent_then_refilled() {
        let mut b = TokenBucket::new(1000.0, 3.0);
        assert!(b.take(1.0) && b.take(1.0) && b.take(1.0));
        assert!(!b.take(1.0));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.take(1.0));
    }
}
