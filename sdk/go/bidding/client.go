// Package bidding is a client of the rtbcore exchange protocol (binary protobuf subprotocol
// rtbcore.v1.proto): reconnection with exponential backoff and full jitter, a circuit breaker,
// replay of missed events with no gap and no duplicate, idempotent requests, ping/pong stale
// detection, and typed events on a channel.
package bidding

//go:generate protoc -I ../../../proto -I /usr/include --go_out=.. --go_opt=module=github.com/rtbcore/rtbcore/sdk/go --go_opt=Mrtbcore/v1/bidding.proto=github.com/rtbcore/rtbcore/sdk/go/bidding/pb ../../../proto/rtbcore/v1/bidding.proto

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rtbcore/rtbcore/sdk/go/bidding/pb"
)

// Subprotocol is the WebSocket subprotocol the client speaks.
const Subprotocol = "rtbcore.v1.proto"

const maxIDBytes = 64
const maxMicros = 1_000_000_000_000

// knownBids bounds the accepted bids remembered per auction (to answer a re-sent bid that meets
// its own earlier bid after an exchange restart).
const knownBids = 10000

// Stats are the client's counters.
type Stats struct {
	Events            uint64 `json:"events"`              // stream events delivered
	Duplicates        uint64 `json:"duplicates"`          // dropped as already delivered
	Connects          uint64 `json:"connects"`            // authenticated connections
	Reconnects        uint64 `json:"reconnects"`          // connections after the first
	FailedAttempts    uint64 `json:"failed_attempts"`     // connection attempts that failed
	RequestsResent    uint64 `json:"requests_resent"`     // unanswered requests re-sent after a reconnect
	FramesSent        uint64 `json:"frames_sent"`         // frames written
	QueueFull         uint64 `json:"queue_full"`          // events that found the channel full
	ReplayTruncated   uint64 `json:"replay_truncated"`    // replays that started after events the log no longer held
	HeldWhileDraining uint64 `json:"held_while_draining"` // requests a draining exchange refused, held for its successor
}

// EventTypes are the names a subscription may filter on.
var EventTypes = []string{"auction_started", "bid_accepted", "bid_rejected", "auction_won",
	"auction_lost", "bid_update", "auction_closed"}

// Kind says what an Event is.
type Kind string

// Event kinds: the protocol's events of the buyer's stream, then the client's own.
const (
	KindAuctionStarted Kind = "auction_started"
	KindBidAccepted    Kind = "bid_accepted"
	KindBidRejected    Kind = "bid_rejected"
	KindAuctionWon     Kind = "auction_won"
	KindAuctionLost    Kind = "auction_lost"
	KindBidUpdate      Kind = "bid_update"
	KindAuctionOpened  Kind = "auction_opened"
	KindAuctionClosed  Kind = "auction_closed"
	KindDisconnect     Kind = "disconnect"
	KindReconnect      Kind = "reconnect"
	KindCircuit        Kind = "circuit"
	KindError          Kind = "error"
)

// Event is one item of the client's event channel. Stream events carry the protocol event
// (Proto, with typed getters such as Proto.GetAuctionWon()); client events carry Err, Circuit
// or CloseCode.
type Event struct {
	Kind      Kind
	Seq       uint64
	Proto     *pb.BidEvent
	Err       error
	Circuit   CircuitState
	CloseCode int
}

// InvalidInputError is bad input caught locally, before anything is sent.
type InvalidInputError struct{ Msg string }

func (e *InvalidInputError) Error() string { return e.Msg }

func invalid(format string, a ...any) error { return &InvalidInputError{fmt.Sprintf(format, a...)} }

// BidRejectedError is the exchange's refusal of a request.
type BidRejectedError struct{ Rejected *pb.BidRejected }

func (e *BidRejectedError) Error() string {
	return fmt.Sprintf("%s: %s", e.Rejected.GetReason(), e.Rejected.GetMessage())
}

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("bidding: client closed")

// ErrAuth is returned when the exchange refuses the credential (close 4001).
var ErrAuth = errors.New("bidding: authentication failed")

type config struct {
	url, apiKey, token string
	reconnect          bool
	backoff            Backoff
	threshold          int
	cooldown           time.Duration
	clock              Clock
	pingInterval       time.Duration
	pongTimeout        time.Duration
	eventBuffer        int
	dialTimeout        time.Duration
	lastSeq            uint64
}

// Option configures NewClient.
type Option func(*config) error

// WithURL is the exchange's WebSocket URL, e.g. ws://127.0.0.1:8080/v1/bidding.
func WithURL(url string) Option { return func(c *config) error { c.url = url; return nil } }

// WithAPIKey authenticates with an API key.
func WithAPIKey(key string) Option { return func(c *config) error { c.apiKey = key; return nil } }

// WithToken authenticates with a signed token.
func WithToken(token string) Option { return func(c *config) error { c.token = token; return nil } }

// WithReconnect turns automatic reconnection (with replay) on or off; on by default.
func WithReconnect(on bool) Option { return func(c *config) error { c.reconnect = on; return nil } }

// WithBackoff sets the backoff's first ceiling and cap (default 1 s and 60 s).
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) error {
		if base <= 0 || max < base {
			return invalid("WithBackoff: need 0 < base <= max, got base=%v max=%v", base, max)
		}
		c.backoff.Base, c.backoff.Max = base, max
		return nil
	}
}

// WithCircuitBreaker sets the failures that open the circuit and its cool-down (default 5, 30 s).
func WithCircuitBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *config) error {
		if threshold < 1 || cooldown < 0 {
			return invalid("WithCircuitBreaker: need threshold >= 1 and cooldown >= 0, got %d, %v", threshold, cooldown)
		}
		c.threshold, c.cooldown = threshold, cooldown
		return nil
	}
}

// WithClock injects the clock and the jitter source (tests).
func WithClock(clock Clock, random func() float64) Option {
	return func(c *config) error { c.clock = clock; c.backoff.Rand = random; return nil }
}

// WithHeartbeat sets how often the client pings and how long it waits for any frame or pong
// before it declares the connection stale and reconnects (default 15 s and 45 s).
func WithHeartbeat(interval, timeout time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 || timeout <= 0 {
			return invalid("WithHeartbeat: interval and timeout must be > 0, got %v, %v", interval, timeout)
		}
		c.pingInterval, c.pongTimeout = interval, timeout
		return nil
	}
}

// WithEventBuffer sets the event channel's capacity (default 4096). A consumer that falls behind
// blocks the reader; the exchange then closes the connection (4008) and the client replays.
func WithEventBuffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithEventBuffer: n must be >= 1, got %d", n)
		}
		c.eventBuffer = n
		return nil
	}
}

// WithLastSeq resumes a stream the process delivered before (replay after seq on subscribe).
func WithLastSeq(seq uint64) Option { return func(c *config) error { c.lastSeq = seq; return nil } }

// Client is a bidding client; its methods are safe for concurrent use.
type Client struct {
	cfg     config
	breaker *CircuitBreaker
	tracker ReplayTracker
	events  chan Event

	mu       sync.Mutex
	conn     *websocket.Conn
	pending  map[string]*pendingReq
	sub      *pb.Subscribe
	auth     *pb.AuthResult
	closed   bool
	cancel   context.CancelFunc
	authed   chan struct{} // closed at the first successful Auth
	fatal    error
	done     chan struct{}
	nextID   uint64
	idPrefix string
	writeMu  sync.Mutex
	started  bool
	stats    Stats
	accepted map[string]*pb.BidEvent // auction id -> the buyer's bid_accepted on it
	order    []string                // accepted's keys, oldest first
}

type pendingReq struct {
	msg    *pb.BidMessage
	reply  chan *pb.BidEvent
	sent   bool // written to a connection at least once
	resent bool // written again after a reconnect
}

// NewClient checks the options; Connect starts it.
func NewClient(opts ...Option) (*Client, error) {
	cfg := config{reconnect: true, backoff: Backoff{Base: time.Second, Max: time.Minute, Rand: rand.Float64},
		threshold: 5, cooldown: 30 * time.Second, clock: systemClock{}, pingInterval: 15 * time.Second,
		pongTimeout: 45 * time.Second, eventBuffer: 4096, dialTimeout: 10 * time.Second}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.url) < 5 || (cfg.url[:5] != "ws://" && (len(cfg.url) < 6 || cfg.url[:6] != "wss://")) {
		return nil, invalid("WithURL: need a ws:// or wss:// URL, got %q", cfg.url)
	}
	if (cfg.apiKey == "") == (cfg.token == "") {
		return nil, invalid("exactly one of WithAPIKey and WithToken is required")
	}
	c := &Client{cfg: cfg, events: make(chan Event, cfg.eventBuffer), pending: map[string]*pendingReq{},
		authed: make(chan struct{}), done: make(chan struct{}), accepted: map[string]*pb.BidEvent{},
		idPrefix: strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}
	c.breaker = &CircuitBreaker{Threshold: cfg.threshold, Cooldown: cfg.cooldown, Clock: cfg.clock}
	c.tracker.last = cfg.lastSeq
	return c, nil
}

// Events is the channel of typed events; it is closed when the client stops for good.
func (c *Client) Events() <-chan Event { return c.events }

// LastSeq is the last seq delivered on the channel (the replay point).
func (c *Client) LastSeq() uint64 { return c.tracker.LastSeq() }

// CircuitState is the circuit breaker's state.
func (c *Client) CircuitState() CircuitState { return c.breaker.State() }

// Stats returns a copy of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Duplicates = c.tracker.Duplicates()
	return s
}

func (c *Client) count(f *uint64) {
	c.mu.Lock()
	*f++
	c.mu.Unlock()
}

// Connect starts the connection loop and waits for the first successful authentication.
func (c *Client) Connect(ctx context.Context) (*pb.AuthResult, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if !c.started {
		c.started = true
		runCtx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		go c.run(runCtx)
	}
	c.mu.Unlock()
	select {
	case <-c.authed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.auth, nil
	case <-c.done:
		return nil, c.fatalErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) fatalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal != nil {
		return c.fatal
	}
	return ErrClosed
}

// Close stops the client; pending requests fail with ErrClosed and the event channel closes.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cancel, conn, started := c.cancel, c.conn, c.started
	c.mu.Unlock()
	if conn != nil {
		c.writeMu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		c.writeMu.Unlock()
		_ = conn.Close()
	}
	if started {
		cancel()
		<-c.done
	} else {
		close(c.done)
		close(c.events)
	}
	return nil
}

func (c *Client) emit(ctx context.Context, ev Event) {
	select {
	case c.events <- ev:
		return
	default:
	}
	// the consumer is behind: the reader waits for room (nothing is dropped)
	c.count(&c.stats.QueueFull)
	select {
	case c.events <- ev:
	case <-ctx.Done():
	}
}

// run is the connection loop: dial, authenticate, resume, read until the connection dies, back off.
func (c *Client) run(ctx context.Context) {
	defer func() {
		c.mu.Lock()
		for id, p := range c.pending {
			close(p.reply)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.done)
		close(c.events)
	}()
	attempt := 0
	everConnected := false
	for ctx.Err() == nil {
		if wait, st := c.breaker.Wait(); wait > 0 {
			if c.cfg.clock.Sleep(ctx, wait) != nil {
				return
			}
			continue
		} else if st == CircuitHalfOpen {
			c.emit(ctx, Event{Kind: KindCircuit, Circuit: st})
		}
		conn, auth, err := c.dial(ctx)
		if err != nil {
			if errors.Is(err, ErrAuth) || !c.cfg.reconnect {
				c.stop(err)
				return
			}
			c.count(&c.stats.FailedAttempts)
			before := c.breaker.State()
			if st := c.breaker.Failure(); st != before {
				c.emit(ctx, Event{Kind: KindCircuit, Circuit: st})
			}
			c.emit(ctx, Event{Kind: KindError, Err: err})
			if c.cfg.clock.Sleep(ctx, c.cfg.backoff.Delay(attempt)) != nil {
				return
			}
			attempt++
			continue
		}
		if before := c.breaker.State(); c.breaker.Success() != before {
			c.emit(ctx, Event{Kind: KindCircuit, Circuit: CircuitClosed})
		}
		attempt = 0
		c.mu.Lock()
		c.conn, c.auth = conn, auth
		c.stats.Connects++
		if everConnected {
			c.stats.Reconnects++
		}
		c.mu.Unlock()
		if err := c.resume(conn); err == nil {
			if everConnected {
				c.emit(ctx, Event{Kind: KindReconnect, Seq: c.tracker.LastSeq()})
			} else {
				everConnected = true
				close(c.authed)
			}
			err = c.read(ctx, conn)
			code := 0
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			c.mu.Lock()
			c.conn = nil
			c.mu.Unlock()
			_ = conn.Close()
			if ctx.Err() != nil {
				return
			}
			c.emit(ctx, Event{Kind: KindDisconnect, Err: err, CloseCode: code})
		} else {
			_ = conn.Close()
		}
		if !c.cfg.reconnect {
			c.stop(fmt.Errorf("bidding: connection closed: %w", ErrClosed))
			return
		}
		if c.cfg.clock.Sleep(ctx, c.cfg.backoff.Delay(attempt)) != nil {
			return
		}
		attempt++
	}
}

func (c *Client) stop(err error) {
	c.mu.Lock()
	c.fatal = err
	c.closed = true
	c.mu.Unlock()
}

func (c *Client) dial(ctx context.Context) (*websocket.Conn, *pb.AuthResult, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	d := websocket.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: c.cfg.dialTimeout}
	conn, _, err := d.DialContext(dctx, c.cfg.url, http.Header{})
	if err != nil {
		return nil, nil, fmt.Errorf("bidding: dial %s: %w", c.cfg.url, err)
	}
	auth := &pb.Auth{}
	if c.cfg.apiKey != "" {
		auth.Credential = &pb.Auth_ApiKey{ApiKey: c.cfg.apiKey}
	} else {
		auth.Credential = &pb.Auth_Token{Token: c.cfg.token}
	}
	if err := c.write(conn, &pb.BidMessage{RequestId: c.id(), Message: &pb.BidMessage_Auth{Auth: auth}}); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(c.cfg.dialTimeout))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == 4001 {
				return nil, nil, ErrAuth
			}
			return nil, nil, fmt.Errorf("bidding: waiting for AuthResult: %w", err)
		}
		frame := &pb.ServerFrame{}
		if err := proto.Unmarshal(data, frame); err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("bidding: undecodable frame: %w", err)
		}
		for _, ev := range frame.Events {
			if ar := ev.GetAuthResult(); ar != nil {
				if !ar.Ok {
					_ = conn.Close()
					return nil, nil, fmt.Errorf("%w: %s", ErrAuth, ar.Message)
				}
				return conn, ar, nil
			}
		}
	}
}

// resume re-subscribes with replay after the last delivered seq, then re-sends unanswered
// requests under their original request ids (the exchange applies each once).
func (c *Client) resume(conn *websocket.Conn) error {
	c.mu.Lock()
	var msgs []*pb.BidMessage
	if c.sub != nil {
		s := proto.Clone(c.sub).(*pb.Subscribe)
		s.ReplayMissed = true
		s.Since = &pb.Subscribe_SinceSeq{SinceSeq: c.tracker.LastSeq()}
		// a fresh id: a repeated one would be answered from the idempotency window, unreplayed
		msgs = append(msgs, &pb.BidMessage{RequestId: c.idLocked(), Message: &pb.BidMessage_Subscribe{Subscribe: s}})
	}
	for _, p := range c.pending {
		if p.msg.GetSubscribe() != nil {
			continue // answered by the resumed subscription's ack
		}
		if p.sent {
			p.resent = true
			c.stats.RequestsResent++
		}
		p.sent = true
		msgs = append(msgs, p.msg)
	}
	c.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	return c.write(conn, msgs...)
}

func (c *Client) read(ctx context.Context, conn *websocket.Conn) error {
	// any frame or pong proves the connection alive; silence past pongTimeout is a stale connection
	_ = conn.SetReadDeadline(time.Now().Add(c.cfg.pongTimeout))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(c.cfg.pongTimeout)) })
	stopPing := make(chan struct{})
	defer close(stopPing)
	go func() {
		t := time.NewTicker(c.cfg.pingInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.writeMu.Lock()
				err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.cfg.pingInterval))
				c.writeMu.Unlock()
				if err != nil {
					return
				}
			case <-stopPing:
				return
			}
		}
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(c.cfg.pongTimeout))
		frame := &pb.ServerFrame{}
		if err := proto.Unmarshal(data, frame); err != nil {
			c.emit(ctx, Event{Kind: KindError, Err: fmt.Errorf("bidding: undecodable frame: %w", err)})
			continue
		}
		for _, ev := range frame.Events {
			c.dispatch(ctx, ev)
		}
	}
}

func kindOf(ev *pb.BidEvent) Kind {
	switch ev.Event.(type) {
	case *pb.BidEvent_AuctionStarted:
		return KindAuctionStarted
	case *pb.BidEvent_BidAccepted:
		return KindBidAccepted
	case *pb.BidEvent_BidRejected:
		return KindBidRejected
	case *pb.BidEvent_AuctionWon:
		return KindAuctionWon
	case *pb.BidEvent_AuctionLost:
		return KindAuctionLost
	case *pb.BidEvent_BidUpdate:
		return KindBidUpdate
	case *pb.BidEvent_AuctionOpened:
		return KindAuctionOpened
	case *pb.BidEvent_AuctionClosed:
		return KindAuctionClosed
	}
	return ""
}

func (c *Client) dispatch(ctx context.Context, ev *pb.BidEvent) {
	c.mu.Lock()
	k := kindOf(ev)
	fresh := k != "" && ev.Seq != 0 && c.tracker.Accept(ev.Seq)
	if fresh {
		c.stats.Events++
		if a := ev.GetBidAccepted(); a != nil && a.AuctionId != "" {
			c.rememberLocked(a.AuctionId, ev)
		}
	}
	if p, ok := c.pending[ev.RequestId]; ok && ev.RequestId != "" {
		c.answerLocked(ev.RequestId, p, ev)
	}
	var truncated bool
	if ack := ev.GetSubscriptionAck(); ack != nil {
		if ack.Truncated {
			truncated = true
			c.stats.ReplayTruncated++
		}
		for id, p := range c.pending {
			if p.msg.GetSubscribe() != nil {
				delete(c.pending, id)
				p.reply <- ev
			}
		}
	}
	c.mu.Unlock()
	if truncated {
		c.emit(ctx, Event{Kind: KindError, Err: fmt.Errorf("bidding: the exchange's log no longer holds every event after seq %d: some were lost to this client", c.tracker.LastSeq())})
	}
	if e := ev.GetError(); e != nil {
		c.emit(ctx, Event{Kind: KindError, Err: fmt.Errorf("bidding: server error %s: %s", e.Reason, e.Message)})
		return
	}
	if fresh {
		c.emit(ctx, Event{Kind: k, Seq: ev.Seq, Proto: ev})
	}
}

// answerLocked settles the request an event answers (c.mu held).
func (c *Client) answerLocked(id string, p *pendingReq, ev *pb.BidEvent) {
	r := ev.GetBidRejected()
	if r != nil && r.Reason == pb.RejectReason_SHUTTING_DOWN && c.cfg.reconnect {
		// a draining exchange refused it without applying anything: held, and re-sent under
		// the same id to the exchange that replaces it
		c.stats.HeldWhileDraining++
		return
	}
	delete(c.pending, id)
	if r != nil && r.Reason == pb.RejectReason_ALREADY_BID && p.resent {
		// a bid re-sent after the exchange restarted (its idempotency window lost) that meets
		// its own earlier bid: answered with that bid's acceptance, replayed from the stream
		if prior, ok := c.accepted[p.msg.GetPlaceBid().GetAuctionId()]; ok {
			p.reply <- prior
			return
		}
	}
	p.reply <- ev
}

func (c *Client) rememberLocked(auctionID string, ev *pb.BidEvent) {
	if _, ok := c.accepted[auctionID]; !ok {
		c.order = append(c.order, auctionID)
	}
	c.accepted[auctionID] = ev
	if len(c.order) > knownBids {
		delete(c.accepted, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *Client) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idLocked()
}

func (c *Client) idLocked() string {
	c.nextID++
	return c.idPrefix + strconv.FormatUint(c.nextID, 10)
}

func (c *Client) write(conn *websocket.Conn, msgs ...*pb.BidMessage) error {
	data, err := proto.Marshal(&pb.ClientFrame{Messages: msgs})
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.dialTimeout))
	if err := conn.WriteMessage(websocket.BinaryMessage, data); err != nil {
		return err
	}
	c.count(&c.stats.FramesSent)
	return nil
}

// request sends msg (now if connected, else at the next connection) and waits for its answer.
func (c *Client) request(ctx context.Context, msg *pb.BidMessage) (*pb.BidEvent, error) {
	if msg.RequestId == "" {
		msg.RequestId = c.id()
	} else if err := checkID("requestId", msg.RequestId); err != nil {
		return nil, err
	}
	p := &pendingReq{msg: msg, reply: make(chan *pb.BidEvent, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[msg.RequestId] = p
	conn := c.conn
	p.sent = conn != nil
	c.mu.Unlock()
	if conn != nil {
		_ = c.write(conn, msg) // a failed write is retried by resume after the reconnect
	}
	select {
	case ev, ok := <-p.reply:
		if !ok {
			return nil, c.fatalErr()
		}
		if r := ev.GetBidRejected(); r != nil {
			return ev, &BidRejectedError{Rejected: r}
		}
		return ev, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, msg.RequestId)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

func checkID(what, v string) error {
	if v == "" || len(v) > maxIDBytes {
		return invalid("%s must be 1..%d bytes, got %d", what, maxIDBytes, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return invalid("%s must be printable ASCII, byte %d is 0x%02x", what, i, v[i])
		}
	}
	return nil
}

// SubscribeOptions selects the events of the durable subscription.
type SubscribeOptions struct {
	EventTypes []string
	Filters    map[string]string
}

// Subscribe sets the buyer's durable subscription; after a reconnect the client re-subscribes
// with replay after the last seq it delivered.
func (c *Client) Subscribe(ctx context.Context, o SubscribeOptions) (*pb.SubscriptionAck, error) {
	for i, t := range o.EventTypes {
		ok := false
		for _, k := range EventTypes {
			ok = ok || k == t
		}
		if !ok {
			return nil, invalid("Subscribe: EventTypes[%d] %q is not one of %v", i, t, EventTypes)
		}
	}
	s := &pb.Subscribe{EventTypes: o.EventTypes, Filters: o.Filters}
	c.mu.Lock()
	c.sub = s
	c.mu.Unlock()
	ev, err := c.request(ctx, &pb.BidMessage{Message: &pb.BidMessage_Subscribe{Subscribe: s}})
	if err != nil {
		return nil, err
	}
	return ev.GetSubscriptionAck(), nil
}

// Bid is a PlaceBid request. Amount is in currency units (2.5) unless AmountMicros is set.
type Bid struct {
	CallID       string
	Amount       float64
	AmountMicros int64
	Currency     string
	Criteria     map[string]any
	TTL          time.Duration
	RequestID    string
}

func micros(what string, amount float64, m int64) (int64, error) {
	if m == 0 {
		if math.IsNaN(amount) || math.IsInf(amount, 0) {
			return 0, invalid("%s must be a finite number, got %v", what, amount)
		}
		m = int64(math.Round(amount * 1e6))
	}
	if m <= 0 {
		return 0, invalid("%s must be > 0, got %v", what, amount)
	}
	if m > maxMicros {
		return 0, invalid("%s must be at most %d micros, got %d", what, int64(maxMicros), m)
	}
	return m, nil
}

// PlaceBid places a bid; it returns the BidAccepted event, or a *BidRejectedError.
func (c *Client) PlaceBid(ctx context.Context, b Bid) (*pb.BidAccepted, error) {
	if err := checkID("PlaceBid: CallID", b.CallID); err != nil {
		return nil, err
	}
	m, err := micros("PlaceBid: Amount", b.Amount, b.AmountMicros)
	if err != nil {
		return nil, err
	}
	if b.TTL < 0 {
		return nil, invalid("PlaceBid: TTL must be >= 0, got %v", b.TTL)
	}
	pbid := &pb.PlaceBid{AuctionId: b.CallID, Amount: &pb.Money{Currency: b.Currency, Micros: m}}
	if b.TTL > 0 {
		pbid.Ttl = durationpb.New(b.TTL)
	}
	if len(b.Criteria) > 0 {
		s, err := structpb.NewStruct(b.Criteria)
		if err != nil {
			return nil, invalid("PlaceBid: Criteria: %v", err)
		}
		pbid.Criteria = s.Fields
	}
	ev, err := c.request(ctx, &pb.BidMessage{RequestId: b.RequestID, Message: &pb.BidMessage_PlaceBid{PlaceBid: pbid}})
	if err != nil {
		return nil, err
	}
	return ev.GetBidAccepted(), nil
}

// CancelBid withdraws a live bid; it returns the BidUpdate{CANCELLED} event.
func (c *Client) CancelBid(ctx context.Context, bidID string) (*pb.BidUpdate, error) {
	if err := checkID("CancelBid: bidID", bidID); err != nil {
		return nil, err
	}
	ev, err := c.request(ctx, &pb.BidMessage{Message: &pb.BidMessage_CancelBid{CancelBid: &pb.CancelBid{BidId: bidID}}})
	if err != nil {
		return nil, err
	}
	return ev.GetBidUpdate(), nil
}

// UpdateBid changes a live bid's amount (micros); it returns the BidUpdate{UPDATED} event.
func (c *Client) UpdateBid(ctx context.Context, bidID string, amountMicros int64) (*pb.BidUpdate, error) {
	if err := checkID("UpdateBid: bidID", bidID); err != nil {
		return nil, err
	}
	m, err := micros("UpdateBid: amountMicros", 0, amountMicros)
	if err != nil {
		return nil, err
	}
	ev, err := c.request(ctx, &pb.BidMessage{Message: &pb.BidMessage_UpdateBid{UpdateBid: &pb.UpdateBid{BidId: bidID, Amount: &pb.Money{Micros: m}}}})
	if err != nil {
		return nil, err
	}
	return ev.GetBidUpdate(), nil
}

// OpenAuction opens an auction (scope "publish"); it returns the AuctionOpened event.
func (c *Client) OpenAuction(ctx context.Context, oa *pb.OpenAuction) (*pb.AuctionOpened, error) {
	if oa.AuctionId != "" {
		if err := checkID("OpenAuction: AuctionId", oa.AuctionId); err != nil {
			return nil, err
		}
	}
	ev, err := c.request(ctx, &pb.BidMessage{Message: &pb.BidMessage_OpenAuction{OpenAuction: oa}})
	if err != nil {
		return nil, err
	}
	return ev.GetAuctionOpened(), nil
}
