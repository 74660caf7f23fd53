/**
 * The fake Bot API as its own process, for the container test: the Bot API on :8081 (reached by the
 * gateway container as http://telegram:8081), and a small control API on :8082 (published to the
 * host's loopback only) through which the test reads cards and presses buttons.
 */
import { createServer } from "node:http";
import { FakeTelegram } from "../helpers/fake-telegram.ts";

const tg = new FakeTelegram(process.env.FAKE_TELEGRAM_TOKEN ?? "");
await tg.start(8081, "0.0.0.0");
createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
  if (req.url === "/messages") return res.end(JSON.stringify([...tg.messages.values()]));
  if (req.url === "/answers") return res.end(JSON.stringify(tg.answers));
  if (req.url === "/press" && req.method === "POST") return res.end(JSON.stringify({ id: tg.pressButton(body) }));
  res.writeHead(404).end();
}).listen(8082, "0.0.0.0");
console.log("fake telegram ready");
