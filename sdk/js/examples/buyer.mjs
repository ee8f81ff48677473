// A minimal buyer: subscribes to announcements, bids a fixed amount on each, prints results.
//   node --experimental-websocket examples/buyer.mjs ws://127.0.0.1:8080/v1/bidding $RTB_API_KEY [seconds]
import { BiddingClient, ReconnectStrategy, BidRejectedError } from '../index.js';

const [url = 'ws://127.0.0.1:8080/v1/bidding', apiKey = process.env.RTB_API_KEY, seconds] = process.argv.slice(2);
const client = new BiddingClient({ url, apiKey, reconnect: ReconnectStrategy.EXPONENTIAL_BACKOFF });
client.on('disconnect', ({ code }) => console.log(`disconnect (${code}), last seq ${client.lastSeq}`));
client.on('reconnect', () => console.log(`reconnect, resuming after seq ${client.lastSeq}`));
client.on('error', (err) => console.error(err.message));

const auth = await client.connect();
console.log(`connected as ${auth.buyerId}`);
const subscription = await client.subscribe({ eventTypes: ['auction_started', 'auction_won', 'auction_lost'] });
subscription.on('event', async (event) => {
  if (event.type === 'auction_started') {
    try {
      await client.placeBid({ callId: event.callId, amount: 0.0025 });
    } catch (err) {
      if (err instanceof BidRejectedError) console.log(`rejected ${event.callId}: ${err.reason}`);
      else throw err;
    }
  } else if (event.type === 'auction_won') {
    console.log(`won ${event.auctionId} at ${event.price.micros} micros`);
  } else if (event.type === 'auction_lost') {
    console.log(`lost ${event.auctionId}`);
  }
});
if (seconds) setTimeout(() => client.close(), Number(seconds) * 1000);
