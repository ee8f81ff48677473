// The SDK conformance scenario's program (tests/test_sdk_conformance.py), the same script in
// every SDK. Usage: conformance URL BUYER_KEY PUBLISHER_KEY. A publisher opens an auction every
// 20 ms; a buyer subscribes to its whole stream and bids 1.0 on every announced auction. One JSON
// line per buyer stream event ({seq, type, auction}), per answered open ({opened, ok | rejected |
// error}) and per answered bid ({bid, accepted | rejected | error}). When stdin ends: stop
// publishing, wait until every opened auction was announced and every bid answered, print
// {done, stats, publisher_stats} and exit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rtbcore/rtbcore/sdk/go/bidding"
	"github.com/rtbcore/rtbcore/sdk/go/bidding/pb"
)

var outMu sync.Mutex

func out(v map[string]any) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = os.Stdout.Write(append(b, '\n'))
}

func answer(key, id string, err error, okKey string, ok any) {
	var rej *bidding.BidRejectedError
	switch {
	case err == nil:
		out(map[string]any{key: id, okKey: ok})
	case errors.As(err, &rej):
		out(map[string]any{key: id, "rejected": rej.Rejected.Reason.String()})
	default:
		out(map[string]any{key: id, "error": err.Error()})
	}
}

func auctionOf(p *pb.BidEvent) string {
	for _, id := range []string{p.GetAuctionStarted().GetAuctionId(), p.GetBidAccepted().GetAuctionId(),
		p.GetBidRejected().GetAuctionId(), p.GetAuctionWon().GetAuctionId(), p.GetAuctionLost().GetAuctionId(),
		p.GetBidUpdate().GetAuctionId(), p.GetAuctionClosed().GetAuctionId()} {
		if id != "" {
			return id
		}
	}
	return ""
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func client(ctx context.Context, url, key string) *bidding.Client {
	c, err := bidding.NewClient(bidding.WithURL(url), bidding.WithAPIKey(key),
		bidding.WithBackoff(50*time.Millisecond, 400*time.Millisecond),
		bidding.WithCircuitBreaker(1000, 500*time.Millisecond),
		bidding.WithHeartbeat(250*time.Millisecond, 750*time.Millisecond))
	if err != nil {
		fail(err)
	}
	if _, err := c.Connect(ctx); err != nil {
		fail(err)
	}
	return c
}

func main() {
	if len(os.Args) != 4 {
		fail(errors.New("usage: conformance URL BUYER_KEY PUBLISHER_KEY"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buyer := client(ctx, os.Args[1], os.Args[2])
	publisher := client(ctx, os.Args[1], os.Args[3])
	go func() { // the publisher has no subscription: only its client events
		for ev := range publisher.Events() {
			if ev.Err != nil {
				fmt.Fprintf(os.Stderr, "publisher %s: %v\n", ev.Kind, ev.Err)
			}
		}
	}()

	var mu sync.Mutex
	announced := map[string]bool{}
	var opened []string
	var bids sync.WaitGroup
	go func() {
		for ev := range buyer.Events() {
			if ev.Err != nil {
				fmt.Fprintf(os.Stderr, "buyer %s: %v\n", ev.Kind, ev.Err)
			}
			if ev.Proto == nil || ev.Seq == 0 {
				continue // the client's own events (reconnect carries the last seq)
			}
			id := auctionOf(ev.Proto)
			out(map[string]any{"seq": ev.Seq, "type": string(ev.Kind), "auction": id})
			if ev.Kind != bidding.KindAuctionStarted {
				continue
			}
			mu.Lock()
			announced[id] = true
			bids.Add(1)
			mu.Unlock()
			go func() {
				defer bids.Done()
				acc, err := buyer.PlaceBid(ctx, bidding.Bid{CallID: id, Amount: 1.0})
				answer("bid", id, err, "accepted", acc.GetBidId())
			}()
		}
	}()
	if _, err := buyer.Subscribe(ctx, bidding.SubscribeOptions{}); err != nil {
		fail(err)
	}
	out(map[string]any{"ready": true})

	var stopping atomic.Bool
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; !stopping.Load(); i++ {
			id := fmt.Sprintf("c%d", i)
			_, err := publisher.OpenAuction(ctx, &pb.OpenAuction{AuctionId: id, Tmax: durationpb.New(500 * time.Millisecond)})
			answer("opened", id, err, "ok", true)
			mu.Lock()
			opened = append(opened, id)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	_, _ = io.Copy(io.Discard, os.Stdin)
	stopping.Store(true)
	<-published
	allAnnounced := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range opened {
			if !announced[id] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !allAnnounced() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	settled := make(chan struct{})
	go func() {
		mu.Lock() // no bid starts after the Wait begins
		defer mu.Unlock()
		bids.Wait()
		close(settled)
	}()
	select {
	case <-settled:
	case <-time.After(30 * time.Second):
	}
	out(map[string]any{"done": true, "stats": buyer.Stats(), "publisher_stats": publisher.Stats()})
	_ = buyer.Close()
	_ = publisher.Close()
}
