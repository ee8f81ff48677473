package bidding

// Against a scripted exchange on 127.0.0.1 (gorilla/websocket and the protocol types): the
// answers a real exchange gives only in narrow windows (a draining exchange's SHUTTING_DOWN, a
// restarted one's ALREADY_BID) and a peer that stops answering pings.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/rtbcore/rtbcore/sdk/go/bidding/pb"
)

type scriptedConn struct {
	n   int // 1 for the first connection
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (sc *scriptedConn) send(evs ...*pb.BidEvent) {
	data, _ := proto.Marshal(&pb.ServerFrame{Events: evs})
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_ = sc.ws.WriteMessage(websocket.BinaryMessage, data)
}

func (sc *scriptedConn) close(code int) {
	sc.wmu.Lock()
	_ = sc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	sc.wmu.Unlock()
	_ = sc.ws.Close()
}

// scripted is an exchange whose answers the test writes: handle sees every message but Auth
// (answered ok) and returns false to stop reading the connection.
type scripted struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    [][]*pb.BidMessage // per connection
	handle func(sc *scriptedConn, m *pb.BidMessage) bool
	// onPing, when set, replaces the automatic pong (return nil without writing to ignore a ping)
	onPing func(sc *scriptedConn, data string) error
}

func newScripted(t *testing.T, handle func(sc *scriptedConn, m *pb.BidMessage) bool) *scripted {
	s := &scripted{handle: handle}
	up := websocket.Upgrader{Subprotocols: []string{Subprotocol}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got = append(s.got, nil)
		sc := &scriptedConn{n: len(s.got), ws: ws}
		onPing := s.onPing
		s.mu.Unlock()
		if onPing != nil {
			ws.SetPingHandler(func(data string) error { return onPing(sc, data) })
		}
		defer ws.Close()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			frame := &pb.ClientFrame{}
			if proto.Unmarshal(data, frame) != nil {
				return
			}
			for _, m := range frame.Messages {
				s.mu.Lock()
				s.got[sc.n-1] = append(s.got[sc.n-1], m)
				s.mu.Unlock()
				if m.GetAuth() != nil {
					sc.send(&pb.BidEvent{RequestId: m.RequestId, Event: &pb.BidEvent_AuthResult{AuthResult: &pb.AuthResult{Ok: true, BuyerId: "acme"}}})
					continue
				}
				if !s.handle(sc, m) {
					return
				}
			}
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/bidding" }

func (s *scripted) messages(conn int) []*pb.BidMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pb.BidMessage(nil), s.got[conn-1]...)
}

func (s *scripted) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func ack(m *pb.BidMessage) *pb.BidEvent {
	return &pb.BidEvent{RequestId: m.RequestId, Event: &pb.BidEvent_SubscriptionAck{SubscriptionAck: &pb.SubscriptionAck{}}}
}

func started(seq uint64, id string) *pb.BidEvent {
	return &pb.BidEvent{Seq: seq, Event: &pb.BidEvent_AuctionStarted{AuctionStarted: &pb.AuctionStarted{AuctionId: id}}}
}

func rejected(seq uint64, m *pb.BidMessage, r pb.RejectReason) *pb.BidEvent {
	return &pb.BidEvent{Seq: seq, RequestId: m.RequestId, Event: &pb.BidEvent_BidRejected{BidRejected: &pb.BidRejected{Reason: r, AuctionId: m.GetPlaceBid().GetAuctionId()}}}
}

func acceptedEv(seq uint64, requestID, bidID, auctionID string) *pb.BidEvent {
	return &pb.BidEvent{Seq: seq, RequestId: requestID, Event: &pb.BidEvent_BidAccepted{BidAccepted: &pb.BidAccepted{BidId: bidID, AuctionId: auctionID}}}
}

func placeBids(msgs []*pb.BidMessage) []*pb.BidMessage {
	var out []*pb.BidMessage
	for _, m := range msgs {
		if m.GetPlaceBid() != nil {
			out = append(out, m)
		}
	}
	return out
}

func drain(c *Client) {
	go func() {
		for range c.Events() {
		}
	}()
}

// A request a draining exchange refuses (SHUTTING_DOWN: nothing applied) is held and re-sent
// under the same id to its successor; without reconnection the refusal is the answer.
func TestHeldWhileDraining(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newScripted(t, func(sc *scriptedConn, m *pb.BidMessage) bool {
		switch {
		case m.GetSubscribe() != nil:
			sc.send(ack(m), started(1, "a1"))
		case m.GetPlaceBid() != nil && sc.n%2 == 1:
			sc.send(rejected(0, m, pb.RejectReason_SHUTTING_DOWN))
			time.Sleep(100 * time.Millisecond)
			sc.close(websocket.CloseGoingAway)
			return false
		case m.GetPlaceBid() != nil:
			sc.send(acceptedEv(2, m.RequestId, "b1", "a1"))
		}
		return true
	})
	c, err := NewClient(WithURL(s.url()), WithAPIKey("k"), WithBackoff(10*time.Millisecond, 20*time.Millisecond))
	must(t, err)
	defer c.Close()
	_, err = c.Connect(ctx)
	must(t, err)
	drain(c)
	_, err = c.Subscribe(ctx, SubscribeOptions{})
	must(t, err)
	acc, err := c.PlaceBid(ctx, Bid{CallID: "a1", Amount: 1})
	must(t, err)
	if acc.BidId != "b1" {
		t.Fatalf("accepted %v", acc)
	}
	if st := c.Stats(); st.HeldWhileDraining != 1 || st.RequestsResent != 1 || st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
	first, second := placeBids(s.messages(1)), placeBids(s.messages(2))
	if len(first) != 1 || len(second) != 1 || first[0].RequestId != second[0].RequestId {
		t.Fatalf("the held bid must be re-sent once under its id: %v then %v", first, second)
	}

	once, err := NewClient(WithURL(s.url()), WithAPIKey("k"), WithReconnect(false))
	must(t, err)
	defer once.Close()
	_, err = once.Connect(ctx)
	must(t, err)
	drain(once)
	_, err = once.PlaceBid(ctx, Bid{CallID: "a1", Amount: 1})
	var rej *BidRejectedError
	if !errors.As(err, &rej) || rej.Rejected.Reason != pb.RejectReason_SHUTTING_DOWN {
		t.Fatalf("without reconnection: %v", err)
	}
}

// An exchange that restarted forgets answered request ids: the re-sent bid meets its own earlier
// bid (ALREADY_BID) and resolves to that bid's acceptance, replayed from the stream. A first
// attempt refused ALREADY_BID stays an error (the caller's own second bid).
func TestAlreadyBidAfterRestartResolvesToTheReplayedAcceptance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newScripted(t, func(sc *scriptedConn, m *pb.BidMessage) bool {
		switch {
		case m.GetSubscribe() != nil && sc.n == 1:
			sc.send(ack(m), started(1, "a1"))
		case m.GetSubscribe() != nil:
			if !m.GetSubscribe().ReplayMissed || m.GetSubscribe().GetSinceSeq() != 1 {
				sc.send(&pb.BidEvent{Event: &pb.BidEvent_Error{Error: &pb.Error{Message: "bad resume"}}})
			}
			sc.send(ack(m), acceptedEv(2, "earlier", "b1", "a1"))
		case m.GetPlaceBid() != nil && sc.n == 1:
			sc.close(websocket.CloseAbnormalClosure) // applied, but the answer never leaves
			return false
		case m.GetPlaceBid() != nil:
			seq := uint64(3)
			if m.RequestId == "second" {
				seq = 4
			}
			sc.send(rejected(seq, m, pb.RejectReason_ALREADY_BID))
		}
		return true
	})
	c, err := NewClient(WithURL(s.url()), WithAPIKey("k"), WithBackoff(10*time.Millisecond, 20*time.Millisecond))
	must(t, err)
	defer c.Close()
	_, err = c.Connect(ctx)
	must(t, err)
	_, err = c.Subscribe(ctx, SubscribeOptions{})
	must(t, err)
	if ev := next(t, c, KindAuctionStarted, nil); ev.Seq != 1 {
		t.Fatalf("started %v", ev)
	}
	drain(c)
	acc, err := c.PlaceBid(ctx, Bid{CallID: "a1", Amount: 1})
	must(t, err)
	if acc.BidId != "b1" {
		t.Fatalf("the re-sent bid resolved to %v, want the replayed b1", acc)
	}
	if st := c.Stats(); st.RequestsResent != 1 {
		t.Fatalf("stats %+v", st)
	}
	if first, second := placeBids(s.messages(1)), placeBids(s.messages(2)); first[0].RequestId != second[0].RequestId {
		t.Fatalf("re-sent under another id: %s, %s", first[0].RequestId, second[0].RequestId)
	}
	_, err = c.PlaceBid(ctx, Bid{CallID: "a1", Amount: 1, RequestID: "second"})
	var rej *BidRejectedError
	if !errors.As(err, &rej) || rej.Rejected.Reason != pb.RejectReason_ALREADY_BID {
		t.Fatalf("a first attempt refused ALREADY_BID: %v", err)
	}
}

// Ping/pong stale detection: while the peer answers pings, an idle connection stays up; once it
// stops (no frame, no pong), the client gives up on the connection after its heartbeat timeout
// and reconnects, resuming the subscription with replay.
func TestPingTimeoutDetectsAStaleConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stalled atomic.Bool
	var pings atomic.Int64
	s := newScripted(t, func(sc *scriptedConn, m *pb.BidMessage) bool {
		if m.GetSubscribe() != nil {
			sc.send(ack(m), started(uint64(sc.n), "a"+string(rune('0'+sc.n))))
		}
		return true
	})
	s.onPing = func(sc *scriptedConn, data string) error {
		pings.Add(1)
		if stalled.Load() && sc.n == 1 {
			return nil // no pong: the first connection has gone silent
		}
		sc.wmu.Lock()
		defer sc.wmu.Unlock()
		return sc.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	}
	// a timeout far above the ping round trip, so that a loaded machine does not lose a pong
	const interval, timeout = 100 * time.Millisecond, 1500 * time.Millisecond
	c, err := NewClient(WithURL(s.url()), WithAPIKey("k"), WithHeartbeat(interval, timeout),
		WithBackoff(10*time.Millisecond, 20*time.Millisecond))
	must(t, err)
	defer c.Close()
	_, err = c.Connect(ctx)
	must(t, err)
	_, err = c.Subscribe(ctx, SubscribeOptions{})
	must(t, err)
	next(t, c, KindAuctionStarted, nil)
	// idle for two heartbeat timeouts, pings answered: the connection is kept
	deadline := time.Now().Add(2 * timeout)
	for time.Now().Before(deadline) {
		select {
		case ev := <-c.Events():
			t.Fatalf("an idle connection whose pings are answered was given up: %v %v", ev.Kind, ev.Err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if n := s.connections(); n != 1 || pings.Load() < 5 {
		t.Fatalf("connections %d, pings %d", n, pings.Load())
	}
	stalled.Store(true)
	at := time.Now()
	d := next(t, c, KindDisconnect, nil)
	took := time.Since(at)
	// no pong can have arrived after the stall, and the last one came at most an interval before it
	if took < timeout-interval-50*time.Millisecond {
		t.Fatalf("declared stale after %v, before its %v timeout", took, timeout)
	}
	if ne, ok := d.Err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		t.Fatalf("disconnect %v, want the read deadline's timeout", d.Err)
	}
	next(t, c, KindReconnect, nil)
	if ev := next(t, c, KindAuctionStarted, nil); ev.Seq != 2 {
		t.Fatalf("after the reconnect: %v", ev)
	}
	resub := s.messages(2)
	var sub *pb.Subscribe
	for _, m := range resub {
		if m.GetSubscribe() != nil {
			sub = m.GetSubscribe()
		}
	}
	if sub == nil || !sub.ReplayMissed || sub.GetSinceSeq() != 1 {
		t.Fatalf("resumed with %v, want replay after seq 1", sub)
	}
	if st := c.Stats(); st.Connects != 2 || st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
}
