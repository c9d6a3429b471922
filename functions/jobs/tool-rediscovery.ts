import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import type { ToolsService } from "../../src/pillars/tools/service.js";
import { startDrive } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";

// Scheduled re-discovery: every MCP server whose interval has passed since its last attempt gets a
// discovery orchestration (one per server: a running one is left to finish).
app.timer("toolRediscovery", {
  schedule: "%TOOL_DISCOVERY_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const tools = (await (await getServices()).pillar("tools")).service as ToolsService;
    const client = durableClient(context);
    let started = 0;
    for await (const drive of tools.dueForDiscovery()) {
      try {
        await startDrive(client, drive);
        started += 1;
      } catch (err) {
        context.error(`tool rediscovery: ${drive.instanceId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (started > 0) context.log(`tool rediscovery started ${started} discovery orchestration(s)`);
  },
});
