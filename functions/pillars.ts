import { app } from "@azure/functions";
import { endpoint } from "../src/http/endpoint.js";
import { pillars } from "../src/pillars/index.js";

// Every pillar's operations, registered the same way: the pillar's handler gets its own service.
for (const pillar of pillars()) {
  for (const r of pillar.routes) {
    app.http(r.op.operationId, endpoint(r.op, async (req, ctx, s) => r.handle(req, ctx, (await s.pillar(pillar.name)).service)));
  }
}
