import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";

// Usage ingestion (ADR 016): the hours of the gateways' logs that received records since the last run
// are recomputed into rollups, then retention. A rerun, an overlap or a crash mid-run changes nothing:
// buckets are recomputed whole from the logs, and the position moves only after them.
app.timer("usageIngest", {
  schedule: "%USAGE_INGEST_SCHEDULE%",
  handler: async (_timer, context) => {
    const { usage } = await getServices();
    const { reports, failures, expired } = await usage.ingest();
    for (const f of failures) context.error(`usage ingestion: source '${f.source}' failed: ${f.error}`);
    for (const r of reports) if (r.hours.length) context.log(`usage ingestion '${r.source}': ${r.requests} request(s) in ${r.hours.length} hour(s), ${r.projects} project(s), ${r.durationMs} ms`);
    if (expired) context.log(`usage retention: ${expired} rollup(s) removed`);
  },
});
