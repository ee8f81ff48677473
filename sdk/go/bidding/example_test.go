package bidding

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rtbcore/rtbcore/sdk/go/bidding/pb"
)

// The example buyer, built and run briefly against a real server, wins an auction it is offered.
func TestExampleBuyer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startServer(t, t.TempDir(), "0")
	bin := t.TempDir() + "/buyer"
	if b, err := exec.Command("go", "build", "-o", bin, "../examples/buyer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	cmd := exec.CommandContext(ctx, bin, "-url", srv.url(), "-key", keys["acme"][0], "-for", "3s")
	out := &syncBuffer{}
	cmd.Stdout = out
	must(t, cmd.Start())
	pub := connect(t, ctx, srv.url(), "pub")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "connected as acme") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the subscription land
	_, err := pub.OpenAuction(ctx, &pb.OpenAuction{AuctionId: "ex-1", ExpectedBids: 1, Tmax: durationpb.New(2 * time.Second)})
	must(t, err)
	_ = cmd.Wait()
	if !strings.Contains(out.String(), "won ex-1 at") {
		t.Fatalf("example output:\n%s", out.String())
	}
}

// syncBuffer is written by the child's output copier while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
