import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NdjsonEventSink } from "../../src/adapters/local/ndjson-events.js";
import type { CloudEvent } from "../../src/ports/events.js";

const event = (id: string): CloudEvent => ({ specversion: "1.0", id, source: "/aigov", type: "aigov.project.created.v1", subject: "/tenants/t/projects/p", time: "2026-01-01T00:00:00.000Z", datacontenttype: "application/json", data: { id } });

describe("local event sink", () => {
  it("appends NDJSON and POSTs each batch to the webhook as a CloudEvents batch", async () => {
    const received: { type: string | undefined; body: unknown }[] = [];
    let status = 200;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        received.push({ type: req.headers["content-type"], body: JSON.parse(body) });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const file = join(mkdtempSync(join(tmpdir(), "aigov-sink-")), "events.ndjson");
    const sink = new NdjsonEventSink(file, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
    await sink.publish([event("a"), event("b")]);
    expect(readFileSync(file, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as CloudEvent).id)).toEqual(["a", "b"]);
    expect(received).toEqual([{ type: "application/cloudevents-batch+json; charset=utf-8", body: [event("a"), event("b")] }]);
    // A failing webhook fails the publish, so the relay keeps the outbox records and retries.
    status = 500;
    await expect(sink.publish([event("c")])).rejects.toThrow(/webhook answered 500/);
    server.close();
  });
});
