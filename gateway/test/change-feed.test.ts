import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { pino } from "pino";
import { ChangeFeed, type Follower } from "../src/store/change-feed.ts";
import type { RequestChange, RequestStatus } from "../src/store/store.ts";
import { dataUrl, gatewayFixture } from "../../test/helpers/gateway-fixture.ts";
import { tempDir } from "../../test/helpers/tmp.ts";

/** A follower that records (request id, status as handed over) and can be told to stall. */
class Recorder implements Follower {
  readonly seen: Array<[string, RequestStatus, boolean]> = [];
  constructor(readonly name: string) {}
  async handle({ request, previous }: RequestChange): Promise<void> {
    this.seen.push([request.id, request.status, previous === undefined]);
  }
}

let n = 0;
async function submit(fx: ReturnType<typeof gatewayFixture>): Promise<string> {
  const res = await fx.post({ skill_id: "feed", skill_url: dataUrl("console.log(1)"), args: { n: String(++n) } });
  return ((await res.json()) as { request_id: string }).request_id;
}
const deny = { approve: false, channel: "test", decidedBy: "test:1" };

test("a durable follower catches up after a restart with every change it missed, once, in its current state", async () => {
  const dbPath = join(tempDir(), "db");
  const first = gatewayFixture({ dbPath, dispatch: false });
  const logger = pino({ level: "silent" });
  const feed = new ChangeFeed(first.store, logger);
  const before = new Recorder("cards");
  feed.follow(before, { durable: true });
  const seenLive = await submit(first);
  await feed.idle();
  assert.deepEqual(before.seen, [[seenLive, "pending", true]], "live delivery");
  // The gateway dies before its followers act on these (committed, never handed over).
  await feed.stop(1000);
  const missedNew = await submit(first);
  await first.approvals.decide(seenLive, deny);
  await first.store.close();

  const second = gatewayFixture({ dbPath, dispatch: false });
  const again = new ChangeFeed(second.store, logger);
  const after = new Recorder("cards");
  again.follow(after, { durable: true });
  await again.idle();
  assert.deepEqual(
    after.seen.sort(),
    [
      [missedNew, "pending", true],
      [seenLive, "denied", true],
    ].sort(),
    "each missed request once, as it is now",
  );
  const fresh = new Recorder("newcomer");
  again.follow(fresh, { durable: true });
  await again.idle();
  assert.deepEqual(fresh.seen, [], "a follower seen for the first time starts at the head, not the whole history");

  // Handled changes are not handed over a third time.
  await second.store.close();
  const third = gatewayFixture({ dbPath, dispatch: false });
  const once = new Recorder("cards");
  const feed3 = new ChangeFeed(third.store, logger);
  feed3.follow(once, { durable: true });
  await feed3.idle();
  assert.deepEqual(once.seen, []);
});

test("changes of one request reach a follower in order, one at a time, even when its handler is slow", async () => {
  const fx = gatewayFixture({ dispatch: false });
  const feed = new ChangeFeed(fx.store, pino({ level: "silent" }));
  const order: string[] = [];
  let running = 0;
  let overlapped = false;
  feed.follow({
    name: "slow",
    async handle({ request }) {
      running++;
      if (running > 1) overlapped = true;
      await new Promise((r) => setImmediate(r));
      order.push(request.status);
      running--;
    },
  });
  const id = await submit(fx);
  await fx.approvals.decide(id, deny);
  await feed.idle();
  assert.deepEqual(order, ["pending", "denied"]);
  assert.equal(overlapped, false);
});
