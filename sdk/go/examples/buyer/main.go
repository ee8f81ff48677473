// A minimal buyer: subscribes to announcements, bids a fixed amount on each, and prints results.
//
//	go run ./examples/buyer -url ws://127.0.0.1:8080/v1/bidding -key "$RTB_API_KEY" -for 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/rtbcore/rtbcore/sdk/go/bidding"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/v1/bidding", "the exchange's WebSocket URL")
	key := flag.String("key", os.Getenv("RTB_API_KEY"), "API key (default $RTB_API_KEY)")
	amount := flag.Float64("amount", 0.0025, "bid per auction, in currency units")
	runFor := flag.Duration("for", 0, "stop after this long (0: until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	client, err := bidding.NewClient(bidding.WithURL(*url), bidding.WithAPIKey(*key), bidding.WithReconnect(true))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	auth, err := client.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("connected as %s\n", auth.BuyerId)
	if _, err := client.Subscribe(ctx, bidding.SubscribeOptions{
		EventTypes: []string{"auction_started", "auction_won", "auction_lost"}}); err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-client.Events():
			if !ok {
				return
			}
			switch ev.Kind {
			case bidding.KindAuctionStarted:
				a := ev.Proto.GetAuctionStarted()
				go func() {
					_, err := client.PlaceBid(ctx, bidding.Bid{CallID: a.AuctionId, Amount: *amount})
					var rej *bidding.BidRejectedError
					if errors.As(err, &rej) {
						fmt.Printf("rejected %s: %s\n", a.AuctionId, rej.Rejected.Reason)
					}
				}()
			case bidding.KindAuctionWon:
				w := ev.Proto.GetAuctionWon()
				fmt.Printf("won %s at %d micros\n", w.AuctionId, w.Price.GetMicros())
			case bidding.KindAuctionLost:
				fmt.Printf("lost %s\n", ev.Proto.GetAuctionLost().AuctionId)
			case bidding.KindDisconnect, bidding.KindReconnect:
				fmt.Printf("%s (last seq %d)\n", ev.Kind, client.LastSeq())
			}
		}
	}
}
