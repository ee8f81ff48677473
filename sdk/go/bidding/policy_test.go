package bidding

import (
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"
)

// fakeClock advances only when told to; Sleep records the wait and returns at once.
type fakeClock struct {
	t      time.Time
	sleeps []time.Duration
}

func (f *fakeClock) Now() time.Time { return f.t }
func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
	return nil
}

func TestBackoffCeilingsAndJitter(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute, Rand: func() float64 { return 0.5 }}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for k, w := range want {
		if got := b.Ceiling(k); got != w*time.Second {
			t.Fatalf("ceiling(%d) = %v, want %v", k, got, w*time.Second)
		}
	}
	if got := b.Delay(3); got != 4*time.Second {
		t.Fatalf("delay(3) with rand 0.5 = %v, want 4s", got)
	}
	r := rand.New(rand.NewSource(7))
	jb := Backoff{Base: time.Second, Max: time.Minute, Rand: r.Float64}
	var q [4]int
	for i := 0; i < 4000; i++ {
		d := jb.Delay(2)
		if d < 0 || d >= 4*time.Second {
			t.Fatalf("delay %v outside [0, 4s)", d)
		}
		q[d/time.Second]++
	}
	for _, n := range q {
		if n < 850 || n > 1150 {
			t.Fatalf("full jitter should be uniform, quarter counts %v", q)
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	b := &CircuitBreaker{Threshold: 3, Cooldown: time.Second, Clock: clk}
	b.Failure()
	b.Failure()
	if b.State() != CircuitClosed {
		t.Fatal("opened before the threshold")
	}
	if b.Failure() != CircuitOpen {
		t.Fatal("not open after 3 failures")
	}
	if w, _ := b.Wait(); w != time.Second {
		t.Fatalf("wait %v, want 1s", w)
	}
	clk.t = clk.t.Add(time.Second)
	if w, st := b.Wait(); w != 0 || st != CircuitHalfOpen {
		t.Fatalf("after the cool-down: %v %v", w, st)
	}
	if b.Failure() != CircuitOpen {
		t.Fatal("a failed probe must reopen at once")
	}
	clk.t = clk.t.Add(time.Second)
	b.Wait()
	if b.Success() != CircuitClosed {
		t.Fatal("a successful probe must close")
	}
}

func TestReplayTracker(t *testing.T) {
	var tr ReplayTracker
	var got []uint64
	for _, s := range []uint64{1, 2, 3, 2, 3, 4, 0, 4, 5, 1} {
		if tr.Accept(s) {
			got = append(got, s)
		}
	}
	want := []uint64{1, 2, 3, 4, 0, 5}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	if tr.LastSeq() != 5 || tr.Duplicates() != 4 {
		t.Fatalf("last %d dup %d", tr.LastSeq(), tr.Duplicates())
	}
}

// The connection loop against an address that refuses: the waits follow the jittered backoff
// and the circuit opens after the threshold, then waits out the cool-down before probing.
func TestRunBacksOffAndOpensCircuit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	c, err := NewClient(WithURL("ws://127.0.0.1:1/v1/bidding"), WithAPIKey("k"),
		WithClock(clk, func() float64 { return 0.5 }), WithCircuitBreaker(3, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var circuits []CircuitState
		for ev := range c.Events() {
			if ev.Kind == KindCircuit {
				circuits = append(circuits, ev.Circuit)
				if len(circuits) == 3 { // open, half_open, open
					cancel()
				}
			}
		}
	}()
	c.cfg.clock = clk
	c.run(ctx)
	if len(clk.sleeps) < 4 || clk.sleeps[0] != 500*time.Millisecond || clk.sleeps[1] != time.Second {
		t.Fatalf("sleeps %v, want the jittered backoff 0.5s, 1s, 2s, then the cool-down", clk.sleeps)
	}
	// the third failure opened the circuit: the loop then waits the cool-down (10 s minus the
	// 2 s backoff already slept) before the half-open probe
	if clk.sleeps[2] != 2*time.Second || clk.sleeps[3] != 8*time.Second {
		t.Fatalf("sleeps %v, want 2s backoff then 8s of cool-down", clk.sleeps)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := NewClient(WithURL("http://x"), WithAPIKey("k")); !isInvalid(err) {
		t.Fatalf("http URL accepted: %v", err)
	}
	if _, err := NewClient(WithURL("ws://x")); !isInvalid(err) {
		t.Fatalf("no credential accepted: %v", err)
	}
	if _, err := NewClient(WithURL("ws://x"), WithAPIKey("k"), WithBackoff(0, time.Second)); !isInvalid(err) {
		t.Fatalf("zero backoff accepted: %v", err)
	}
	c, _ := NewClient(WithURL("ws://127.0.0.1:1/v1/bidding"), WithAPIKey("k"))
	ctx := context.Background()
	nan := 0.0
	nan = nan / nan
	cases := []Bid{{CallID: "a", Amount: nan}, {CallID: "a", Amount: -1}, {CallID: "", Amount: 1},
		{CallID: string(make([]byte, 65)), Amount: 1}, {CallID: "a", Amount: 2e6}}
	for _, b := range cases {
		if _, err := c.PlaceBid(ctx, b); !isInvalid(err) {
			t.Fatalf("PlaceBid(%+v) = %v, want InvalidInputError", b, err)
		}
	}
	if _, err := c.Subscribe(ctx, SubscribeOptions{EventTypes: []string{"auction_begun"}}); !isInvalid(err) {
		t.Fatalf("unknown event type accepted: %v", err)
	}
	_ = c.Close()
	if _, err := c.PlaceBid(ctx, Bid{CallID: "a", Amount: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("PlaceBid after Close = %v", err)
	}
}

func isInvalid(err error) bool {
	var e *InvalidInputError
	return errors.As(err, &e)
}
