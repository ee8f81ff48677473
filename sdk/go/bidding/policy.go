package bidding

import (
	"context"
	"math"
	"sync"
	"time"
)

// Clock is the time source of the reconnection logic; tests inject their own.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Backoff is exponential backoff with full jitter: attempt k waits uniformly in
// [0, min(Max, Base*2^k)), i.e. ceilings of 1, 2, 4, 8, 16, 32, 60 s with the defaults.
type Backoff struct {
	Base, Max time.Duration
	Rand      func() float64 // uniform in [0, 1)
}

// Ceiling is the longest wait of attempt k.
func (b Backoff) Ceiling(k int) time.Duration {
	c := float64(b.Base) * math.Pow(2, float64(k))
	if c > float64(b.Max) {
		return b.Max
	}
	return time.Duration(c)
}

// Delay is the jittered wait of attempt k.
func (b Backoff) Delay(k int) time.Duration { return time.Duration(b.Rand() * float64(b.Ceiling(k))) }

// CircuitState is the state of a CircuitBreaker.
type CircuitState string

const (
	CircuitClosed   CircuitState = "closed"
	CircuitOpen     CircuitState = "open"
	CircuitHalfOpen CircuitState = "half_open"
)

// CircuitBreaker counts consecutive failed connection attempts: Threshold of them open it; after
// Cooldown it lets one probe through (half-open); a success closes it, a failure reopens it.
type CircuitBreaker struct {
	Threshold int
	Cooldown  time.Duration
	Clock     Clock

	mu       sync.Mutex
	state    CircuitState
	failures int
	openedAt time.Time
}

// State is the breaker's current state.
func (b *CircuitBreaker) State() CircuitState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == "" {
		return CircuitClosed
	}
	return b.state
}

// Wait is how long until an attempt is allowed; it moves open to half-open once the cool-down is over.
func (b *CircuitBreaker) Wait() (time.Duration, CircuitState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != CircuitOpen {
		return 0, b.get()
	}
	left := b.openedAt.Add(b.Cooldown).Sub(b.Clock.Now())
	if left > 0 {
		return left, b.state
	}
	b.state = CircuitHalfOpen
	return 0, b.state
}

func (b *CircuitBreaker) get() CircuitState {
	if b.state == "" {
		return CircuitClosed
	}
	return b.state
}

// Success records a successful attempt and returns the new state.
func (b *CircuitBreaker) Success() CircuitState {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	b.state = CircuitClosed
	return b.state
}

// Failure records a failed attempt and returns the new state.
func (b *CircuitBreaker) Failure() CircuitState {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.state == CircuitHalfOpen || b.failures >= b.Threshold {
		b.state = CircuitOpen
		b.openedAt = b.Clock.Now()
	}
	return b.get()
}

// ReplayTracker delivers each event of the buyer's stream once: it remembers the highest seq
// delivered and drops anything at or below it. Seq 0 (events outside the stream) always passes.
type ReplayTracker struct {
	mu         sync.Mutex
	last       uint64
	duplicates uint64
}

// Accept reports whether the event with this seq is new, and records it.
func (t *ReplayTracker) Accept(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq == 0 {
		return true
	}
	if seq <= t.last {
		t.duplicates++
		return false
	}
	t.last = seq
	return true
}

// LastSeq is the highest seq delivered.
func (t *ReplayTracker) LastSeq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Duplicates counts the events dropped as already delivered.
func (t *ReplayTracker) Duplicates() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.duplicates
}
