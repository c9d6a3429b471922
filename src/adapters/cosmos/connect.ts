import type { Config } from "../../config/index.js";
import { CosmosStore } from "./store.js";

/**
 * Builds the Cosmos client. In Azure: managed identity (DefaultAzureCredential), no account keys.
 * Locally: the embedded server, which accepts any key, over plain HTTP with keep-alive.
 * The SDKs are imported here, lazily, so loading the function app stays cheap.
 */
export async function connectCosmos(config: Config["cosmos"], opts: { createIfMissing: boolean }): Promise<CosmosStore> {
  // require, not import(): one (CommonJS) copy of the SDK, loaded only when first needed.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cosmos = require("@azure/cosmos") as typeof import("@azure/cosmos");
  let client;
  if (config.localKey !== undefined) {
    // No custom agent: the SDK only allows plain HTTP with its own (keep-alive) default agent.
    client = new cosmos.CosmosClient({
      endpoint: config.endpoint,
      key: config.localKey,
      connectionPolicy: { enableEndpointDiscovery: false },
    });
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { DefaultAzureCredential } = require("@azure/identity") as typeof import("@azure/identity");
    client = new cosmos.CosmosClient({ endpoint: config.endpoint, aadCredentials: new DefaultAzureCredential() });
  }
  const database = client.database(config.database);
  let container = database.container(config.container);
  if (opts.createIfMissing) {
    // In Azure the database and container are provisioned by infra/main.bicep (data-plane RBAC cannot create them).
    const { database: db } = await client.databases.createIfNotExists({ id: config.database });
    ({ container } = await db.containers.createIfNotExists({
      id: config.container,
      partitionKey: {
        paths: ["/tenantId", "/scopeId"],
        kind: cosmos.PartitionKeyKind.MultiHash,
        version: cosmos.PartitionKeyDefinitionVersion.V2,
      },
    }));
  }
  return new CosmosStore(client, container);
}
