import { app } from "@azure/functions";
import { collectKey, createKey, getKey, listKeys, listSharedKeys, lookupKey, resumeKey, revokeKey, rotateKey, shareKey, suspendKey, unshareKey } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClientInput } from "../src/workflows/registration.js";

const clientInput = durableClientInput();

app.http(createKey.operationId, {
  // A key that needs an approval comes with the approval's driver (the approval sweep starts it if this fails).
  ...endpoint(createKey, async ({ params, body }, ctx, s, invocation) => ({ body: await driven(invocation, await s.keys.create(ctx, params.projectId, body)) })),
  extraInputs: [clientInput],
});

app.http(listKeys.operationId, endpoint(listKeys, async ({ params, query }, ctx, s) => ({
  body: pageResult(listKeys, { params, query }, await s.keys.list(ctx, params.projectId, query)),
})));

app.http(getKey.operationId, endpoint(getKey, async ({ params }, ctx, s) => ({ body: await s.keys.get(ctx, params.projectId, params.keyId) })));

app.http(rotateKey.operationId, {
  // The rotation's driver starts with the answer; if that fails, the key lifecycle job starts it (same instance id).
  ...endpoint(rotateKey, async ({ params, body, ifMatch }, ctx, s, invocation) => {
    const { rotationId: _r, ...key } = await driven(invocation, await s.keys.rotate(ctx, params.projectId, params.keyId, body, ifMatch));
    return { body: key };
  }),
  extraInputs: [clientInput],
});

app.http(revokeKey.operationId, endpoint(revokeKey, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.keys.revoke(ctx, params.projectId, params.keyId, body, ifMatch),
})));

app.http(suspendKey.operationId, endpoint(suspendKey, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.keys.suspend(ctx, params.projectId, params.keyId, body, ifMatch),
})));

app.http(resumeKey.operationId, endpoint(resumeKey, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.keys.resume(ctx, params.projectId, params.keyId, body, ifMatch),
})));

app.http(collectKey.operationId, endpoint(collectKey, async ({ params }, ctx, s) => ({ body: await s.keys.pickup(ctx, params.projectId, params.keyId) })));

app.http(lookupKey.operationId, endpoint(lookupKey, async ({ body }, ctx, s) => ({ body: await s.keys.lookup(ctx, body) })));

app.http(shareKey.operationId, {
  // The approval's driver, as for any approval request (the approval sweep starts it if this fails).
  ...endpoint(shareKey, async ({ params, body, ifMatch }, ctx, s, invocation) => ({
    body: await driven(invocation, await s.keys.share(ctx, params.projectId, params.keyId, body, ifMatch)),
  })),
  extraInputs: [clientInput],
});

app.http(unshareKey.operationId, endpoint(unshareKey, async ({ params, ifMatch }, ctx, s) => ({
  body: await s.keys.unshare(ctx, params.projectId, params.keyId, params.targetProjectId, ifMatch),
})));

app.http(listSharedKeys.operationId, endpoint(listSharedKeys, async ({ params }, ctx, s) => ({ body: { items: await s.keys.listSharedIn(ctx, params.projectId) } })));
