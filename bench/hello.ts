// P2's ceiling: a bare hono hello-world served the way the gateway is (@hono/node-server, own process).
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";

const app = new Hono();
app.get("/", (c) => c.json({ hello: "world" }));
// The same size of document as a completed request's status, to separate our code from payload size.
const document = JSON.parse(process.env.STATUS_DOCUMENT ?? "{}");
app.get("/same", (c) => c.json(document));
createAdaptorServer({ fetch: app.fetch }).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("ready"));
