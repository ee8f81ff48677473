package bidding

// Against a real `rtbcore serve` (RTBCORE_BIN, default <repo>/.venv/bin/rtbcore) on real sockets.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rtbcore/rtbcore/sdk/go/bidding/pb"
)

var keys = map[string][2]string{
	"pub":  {"key-pub", `["publish", "subscribe", "metrics"]`},
	"acme": {"key-acme", `["bid", "subscribe"]`},
	"bolt": {"key-bolt", `["bid", "subscribe"]`},
}

type server struct {
	cmd  *exec.Cmd
	dir  string
	port string
	done chan struct{}
}

func rtbcoreBin(t *testing.T) string {
	if b := os.Getenv("RTBCORE_BIN"); b != "" {
		return b
	}
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "..", ".venv", "bin", "rtbcore")
}

func startServer(t *testing.T, dir, port string) *server {
	t.Helper()
	var k strings.Builder
	for buyer, v := range keys {
		sum := sha256.Sum256([]byte(v[0]))
		fmt.Fprintf(&k, "[[keys]]\nbuyer = %q\nsha256 = %q\nscopes = %s\n\n", buyer, hex.EncodeToString(sum[:]), v[1])
	}
	must(t, os.WriteFile(filepath.Join(dir, "keys.toml"), []byte(k.String()), 0o600))
	cfg := filepath.Join(dir, "exchange.toml")
	must(t, os.WriteFile(cfg, []byte("[server]\nport = 0\nshutdown = \"cancel\"\n[auth]\nkeys_file = \"keys.toml\"\n"+
		"[engine]\ntmax_ms = 200\n[events]\npath = \"events.ring\"\nmax_records = 65536\n"), 0o600))
	cmd := exec.Command(rtbcoreBin(t), "serve", "--config", cfg, "--port", port)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	s := &server{cmd: cmd, dir: dir, done: make(chan struct{})}
	re := regexp.MustCompile(`listening on http://[\d.]+:(\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	select {
	case s.port = <-found:
	case <-s.done:
		t.Fatalf("rtbcore serve exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatalf("rtbcore serve did not start")
	}
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	return s
}

func (s *server) url() string { return "ws://127.0.0.1:" + s.port + "/v1/bidding" }

func (s *server) stop(sig syscall.Signal) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	<-s.done
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func connect(t *testing.T, ctx context.Context, url, who string) *Client {
	t.Helper()
	// a breaker that tolerates the seconds a restart takes on a loaded machine (the default opens
	// after 5 failed attempts, about a second of refused connections at this backoff)
	c, err := NewClient(WithURL(url), WithAPIKey(keys[who][0]), WithBackoff(50*time.Millisecond, 400*time.Millisecond),
		WithCircuitBreaker(1000, 500*time.Millisecond))
	must(t, err)
	_, err = c.Connect(ctx)
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// next waits for the first stream event of kind k (other events are skipped and returned).
func next(t *testing.T, c *Client, k Kind, seen *[]Event) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("event channel closed waiting for %s", k)
			}
			if ev.Seq > 0 && seen != nil {
				*seen = append(*seen, ev)
			}
			if ev.Kind == k {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", k)
		}
	}
}

func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startServer(t, t.TempDir(), "0")
	acme := connect(t, ctx, srv.url(), "acme")
	bolt := connect(t, ctx, srv.url(), "bolt")
	pub := connect(t, ctx, srv.url(), "pub")

	ack, err := acme.Subscribe(ctx, SubscribeOptions{EventTypes: []string{"auction_started", "auction_won"}, Filters: map[string]string{"vertical": "news"}})
	must(t, err)
	if len(ack.EventTypes) != 2 {
		t.Fatalf("ack %v", ack)
	}
	_, err = bolt.Subscribe(ctx, SubscribeOptions{Filters: map[string]string{"vertical": "news"}})
	must(t, err)
	_, err = pub.OpenAuction(ctx, &pb.OpenAuction{AuctionId: "sports-1", Attributes: map[string]string{"vertical": "sports"}})
	must(t, err)
	_, err = pub.OpenAuction(ctx, &pb.OpenAuction{AuctionId: "news-1", Attributes: map[string]string{"vertical": "news"},
		Floor: &pb.Money{Micros: 1000}, Tmax: durationpb.New(5 * time.Second), ExpectedBids: 2})
	must(t, err)
	var seen []Event
	st := next(t, acme, KindAuctionStarted, &seen).Proto.GetAuctionStarted()
	if st.AuctionId != "news-1" || st.Floor.GetMicros() != 1000 {
		t.Fatalf("announcement %v (the sports one is filtered out)", st)
	}
	next(t, bolt, KindAuctionStarted, nil)
	acc, err := acme.PlaceBid(ctx, Bid{CallID: "news-1", Amount: 0.0025, Criteria: map[string]any{"exclusive": true}})
	must(t, err)
	if acc.Amount.GetMicros() != 2500 {
		t.Fatalf("accepted %v", acc)
	}
	_, err = bolt.PlaceBid(ctx, Bid{CallID: "news-1", AmountMicros: 2000})
	must(t, err)
	won := next(t, acme, KindAuctionWon, &seen).Proto.GetAuctionWon()
	if won.BidId != acc.BidId || won.Price.GetMicros() != 2000 {
		t.Fatalf("won %v, want bid %s at the runner-up's 2000", won, acc.BidId)
	}
	lost := next(t, bolt, KindAuctionLost, nil).Proto.GetAuctionLost()
	if lost.LossReason != 102 {
		t.Fatalf("lost %v", lost)
	}

	_, err = pub.OpenAuction(ctx, &pb.OpenAuction{AuctionId: "news-2", Attributes: map[string]string{"vertical": "news"}, Tmax: durationpb.New(5 * time.Second)})
	must(t, err)
	next(t, acme, KindAuctionStarted, &seen)
	b2, err := acme.PlaceBid(ctx, Bid{CallID: "news-2", Amount: 0.01, RequestID: "bid-news-2"})
	must(t, err)
	again, err := acme.PlaceBid(ctx, Bid{CallID: "news-2", Amount: 0.01, RequestID: "bid-news-2"})
	must(t, err)
	if again.BidId != b2.BidId {
		t.Fatalf("a repeated request id was applied twice: %s, %s", b2.BidId, again.BidId)
	}
	upd, err := acme.CancelBid(ctx, b2.BidId)
	must(t, err)
	if upd.Status != pb.BidStatus_CANCELLED {
		t.Fatalf("cancel answered %v", upd)
	}
	_, err = acme.PlaceBid(ctx, Bid{CallID: "no-such-auction", Amount: 1})
	var rej *BidRejectedError
	if !errors.As(err, &rej) || rej.Rejected.Reason != pb.RejectReason_UNKNOWN_AUCTION {
		t.Fatalf("unknown auction: %v", err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Seq <= seen[i-1].Seq {
			t.Fatalf("seq not increasing: %d then %d", seen[i-1].Seq, seen[i].Seq)
		}
	}
}

// SIGTERM and kill -9 of the server: the client reconnects, replays after its last seq, and the
// user sees every announcement once, in order, with no gap.
func TestRestartReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	srv := startServer(t, dir, "0")
	acme := connect(t, ctx, srv.url(), "acme")
	_, err := acme.Subscribe(ctx, SubscribeOptions{EventTypes: []string{"auction_started"}})
	must(t, err)
	open := func(url, id string) {
		pub := connect(t, ctx, url, "pub")
		_, err := pub.OpenAuction(ctx, &pb.OpenAuction{AuctionId: id, Tmax: durationpb.New(30 * time.Second)})
		must(t, err)
		_ = pub.Close()
	}
	var seen []Event
	open(srv.url(), "r-1")
	open(srv.url(), "r-2")
	next(t, acme, KindAuctionStarted, &seen)
	next(t, acme, KindAuctionStarted, &seen)
	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		srv.stop(sig)
		next(t, acme, KindDisconnect, nil)
		srv = startServer(t, dir, srv.port)
		// reconnect (and replay) before anything new is announced
		next(t, acme, KindReconnect, nil)
		id := fmt.Sprintf("after-%d", round+1)
		open(srv.url(), id)
		if got := next(t, acme, KindAuctionStarted, &seen).Proto.GetAuctionStarted().AuctionId; got != id {
			t.Fatalf("round %d: got %s, want %s", round+1, got, id)
		}
	}
	var ids []string
	for i, ev := range seen {
		ids = append(ids, ev.Proto.GetAuctionStarted().AuctionId)
		if i > 0 && ev.Seq != seen[i-1].Seq+1 {
			t.Fatalf("gap or duplicate: seq %d after %d", ev.Seq, seen[i-1].Seq)
		}
	}
	if strings.Join(ids, ",") != "r-1,r-2,after-1,after-2" {
		t.Fatalf("delivered %v", ids)
	}
}
