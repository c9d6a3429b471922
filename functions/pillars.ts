import { app } from "@azure/functions";
import { endpoint } from "../src/http/endpoint.js";
import { pillars } from "../src/pillars/index.js";
import { driven } from "../src/workflows/drive.js";
import { durableClientInput } from "../src/workflows/registration.js";

const clientInput = durableClientInput();

// Every pillar's operations, registered the same way: the pillar's handler gets its own service; a
// route that may need an orchestration gets a durable client, and the orchestration starts here.
for (const pillar of pillars()) {
  for (const r of pillar.routes) {
    // A start that fails does not fail the answer: the change is stored already (driven()).
    const options = endpoint(r.op, async (req, ctx, s, invocation) => driven(invocation, await r.handle(req, ctx, (await s.pillar(pillar.name)).service)));
    app.http(r.op.operationId, r.drives ? { ...options, extraInputs: [clientInput] } : options);
  }
}
