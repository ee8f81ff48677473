// Type declarations of the rtbcore bidding client (hand-written; the package has no build step).

export declare const ReconnectStrategy: {
  readonly NONE: 'none';
  readonly EXPONENTIAL_BACKOFF: 'exponential_backoff';
};
export type ReconnectStrategy = (typeof ReconnectStrategy)[keyof typeof ReconnectStrategy];

export type StreamEventType =
  | 'auction_started' | 'bid_accepted' | 'bid_rejected' | 'auction_won' | 'auction_lost'
  | 'bid_update' | 'auction_closed';
export declare const EVENT_TYPES: readonly StreamEventType[];

export type EventType = StreamEventType | 'auth_result' | 'subscription_ack' | 'metrics_update'
  | 'auction_opened' | 'error' | 'unknown';

/** Money as delivered to users: integer micros (1e-6) of the currency unit. */
export interface Money { currency: string; micros: number }

/** A server event, flattened: the envelope fields plus the fields of its payload. */
export interface BidEvent {
  type: EventType;
  /** The buyer's sequence number; 0 outside the buyer's stream. */
  seq: number;
  eventId: string;
  /** RFC 3339. */
  timestamp: string;
  requestId: string;
  auctionId?: string;
  /** Alias of auctionId (pay-per-call marketplaces). */
  callId?: string;
  bidId?: string;
  amount?: Money;
  price?: Money;
  minToWin?: Money;
  floor?: Money;
  attributes?: Record<string, string>;
  deadline?: string;
  expectedBids?: number;
  auctionType?: 'FIRST_PRICE' | 'SECOND_PRICE' | 'AUCTION_TYPE_UNSPECIFIED';
  reason?: string;
  message?: string;
  lossReason?: number;
  status?: 'UPDATED' | 'CANCELLED' | 'EXPIRED' | 'BID_STATUS_UNSPECIFIED';
  slot?: number;
  winners?: { buyerId: string; bidId: string; price?: { currency?: string; micros: string }; slot?: number }[];
  nBids?: number;
  closedBy?: 'DEADLINE' | 'ALL_BIDS' | 'SHUTDOWN' | 'CLOSED_BY_UNSPECIFIED';
  ok?: boolean;
  buyerId?: string;
  scopes?: string[];
  metrics?: Record<string, number>;
  eventTypes?: string[];
  filters?: Record<string, string>;
  replayFrom?: string;
  replayTo?: string;
  truncated?: boolean;
  /** The event exactly as received (canonical JSON of `BidEvent`). */
  raw: Record<string, unknown>;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}
export declare const systemClock: Clock;

export interface BiddingClientOptions {
  /** ws:// or wss:// URL of /v1/bidding. */
  url: string;
  apiKey?: string;
  token?: string;
  /** Default EXPONENTIAL_BACKOFF. */
  reconnect?: ReconnectStrategy;
  /** Backoff ceilings baseMs * 2^k capped at maxMs (default 1000, 60000), full jitter. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Consecutive failed attempts that open the circuit (5) and its cool-down (30000 ms). */
  circuitBreaker?: { failureThreshold?: number; cooldownMs?: number };
  clock?: Clock;
  /** Jitter source, uniform in [0, 1). */
  random?: () => number;
  /** A WebSocket constructor (default: the platform's). */
  WebSocket?: new (url: string, protocols: string[]) => WebSocket;
  connectTimeoutMs?: number;
  /** Idle time before a health probe (default 15000; 0 disables) and its answer timeout (10000). */
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  /** Events the subscription's iterator holds before backpressure is reported (default 10000). */
  maxQueue?: number;
  /** Resume a stream delivered before: replay after this seq on subscribe. */
  lastSeq?: number;
}

/** The client's counters (`client.stats`). */
export interface ClientStats {
  events: number;
  duplicates: number;
  connects: number;
  reconnects: number;
  failed_attempts: number;
  requests_resent: number;
  frames_sent: number;
  queue_full: number;
  replay_truncated: number;
  held_while_draining: number;
}
export declare const STAT_NAMES: readonly (keyof ClientStats)[];

export interface SubscribeOptions {
  eventTypes?: StreamEventType[];
  filters?: Record<string, string | number | boolean>;
  /** Replay the buyer's events after this seq before the live stream. */
  sinceSeq?: number;
}

export interface PlaceBidOptions {
  callId?: string;
  auctionId?: string;
  /** In currency units (2.5), or give amountMicros. */
  amount?: number;
  amountMicros?: number | bigint;
  currency?: string;
  criteria?: Record<string, unknown>;
  /** Seconds. */
  ttl?: number;
  requestId?: string;
}

export declare class Emitter {
  on(name: string, fn: (...args: any[]) => void): this;
  off(name: string, fn: (...args: any[]) => void): this;
  emit(name: string, ...args: unknown[]): void;
}

export declare class InvalidInputError extends Error {}
export declare class BidRejectedError extends Error {
  reason: string;
  event: BidEvent;
}
export declare class ConnectionError extends Error {
  code?: number;
}

export declare class Backoff {
  constructor(opts?: { baseMs?: number; maxMs?: number; random?: () => number });
  ceiling(attempt: number): number;
  delay(attempt: number): number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';
export declare class CircuitBreaker {
  constructor(opts?: { failureThreshold?: number; cooldownMs?: number; clock?: Clock; onChange?: (s: CircuitState) => void });
  state: CircuitState;
  waitMs(): number;
  success(): void;
  failure(): void;
}

export declare class ReplayTracker {
  constructor(lastSeq?: number);
  lastSeq: number;
  duplicates: number;
  accept(seq: number): boolean;
}

export declare function normalizeEvent(raw: Record<string, unknown>): BidEvent;

export declare class Subscription extends Emitter implements AsyncIterable<BidEvent> {
  eventTypes: StreamEventType[];
  filters: Record<string, string>;
  ack: BidEvent | null;
  /** Events waiting for the iterator (or for the first handler). */
  readonly queued: number;
  on(name: 'event', fn: (event: BidEvent) => void): this;
  /** The stream as an async iterator (one per subscription); it ends when the client closes. */
  events(): AsyncIterableIterator<BidEvent>;
  [Symbol.asyncIterator](): AsyncIterableIterator<BidEvent>;
}

export declare class BiddingClient extends Emitter {
  constructor(opts: BiddingClientOptions);
  readonly circuitState: CircuitState;
  readonly lastSeq: number;
  readonly connected: boolean;
  readonly stats: ClientStats;
  connect(): Promise<BidEvent>;
  subscribe(opts?: SubscribeOptions): Promise<Subscription>;
  placeBid(opts: PlaceBidOptions): Promise<BidEvent>;
  updateBid(opts: { bidId: string; amount?: number; amountMicros?: number | bigint; currency?: string; ttl?: number; requestId?: string }): Promise<BidEvent>;
  cancelBid(opts: { bidId: string; requestId?: string }): Promise<BidEvent>;
  openAuction(opts?: { auctionId?: string; attributes?: Record<string, string | number>; floor?: number; floorMicros?: number; tmax?: number; expectedBids?: number; requestId?: string }): Promise<BidEvent>;
  metrics(): Promise<BidEvent>;
  ack(seq?: number): void;
  close(): void;
  on(name: 'event', fn: (event: BidEvent) => void): this;
  on(name: 'connect', fn: (auth: BidEvent) => void): this;
  on(name: 'disconnect', fn: (info: { code: number; reason: string }) => void): this;
  on(name: 'reconnect', fn: (info: { attempt: number; lastSeq: number }) => void): this;
  on(name: 'circuit_open' | 'circuit_half_open' | 'circuit_closed', fn: (info: { state: CircuitState }) => void): this;
  on(name: 'backpressure', fn: (info: { queued: number }) => void): this;
  on(name: 'error', fn: (err: Error) => void): this;
  on(name: 'handler_error', fn: (err: unknown, event: string) => void): this;
}
