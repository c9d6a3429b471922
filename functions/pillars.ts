import { app } from "@azure/functions";
import { endpoint } from "../src/http/endpoint.js";
import { pillars } from "../src/pillars/index.js";
import { startDrive } from "../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../src/workflows/registration.js";

const clientInput = durableClientInput();

// Every pillar's operations, registered the same way: the pillar's handler gets its own service; a
// route that may need an orchestration gets a durable client, and the orchestration starts here.
for (const pillar of pillars()) {
  for (const r of pillar.routes) {
    const options = endpoint(r.op, async (req, ctx, s, invocation) => {
      const { drive, ...result } = await r.handle(req, ctx, (await s.pillar(pillar.name)).service);
      if (drive) await startDrive(durableClient(invocation), drive);
      return result;
    });
    app.http(r.op.operationId, r.drives ? { ...options, extraInputs: [clientInput] } : options);
  }
}
