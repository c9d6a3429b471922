import { app } from "@azure/functions";
import { routeFallback } from "../src/http/fallback.js";

// Not an operation of the API: the problem+json answer to every path and method no operation serves.
app.http("routeFallback", routeFallback());
