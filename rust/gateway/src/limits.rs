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

    /// Takes `n` tokens at `now` if there are that many (the messages of one frame share one
    /// clock reading).
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
        let t = Instant::now();
        assert!(b.take_at(1.0, t) && b.take_at(1.0, t) && b.take_at(1.0, t));
        assert!(!b.take_at(1.0, t));
        // 1000 tokens a second: 5 ms later there are some again
        assert!(b.take_at(1.0, t + std::time::Duration::from_millis(5)));
    }
}
