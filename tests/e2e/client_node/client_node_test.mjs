// Drives a kelpie server with the official Kubernetes JavaScript client
// (@kubernetes/client-node): list, create, get, watch, patch and delete pods
// in a fresh namespace. Usage: node client_node_test.mjs KUBECONFIG
// Prints one line per check; exits non-zero on the first failure.
import * as k8s from '@kubernetes/client-node';
import assert from 'node:assert/strict';

const kubeconfigPath = process.argv[2];
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfigPath);
const core = kc.makeApiClient(k8s.CoreV1Api);
const namespace = `client-node-${process.pid}`;

function pod(name, labels) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'busybox', command: ['sleep', '3600'] }] },
  };
}

async function main() {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  console.log(`ok created namespace ${namespace}`);

  // A watch started before the writes sees them in order.
  const seen = [];
  const watch = new k8s.Watch(kc);
  let done;
  const allSeen = new Promise((resolve) => { done = resolve; });
  const request = await watch.watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { allowWatchBookmarks: true },
    (type, obj) => {
      if (type === 'BOOKMARK') return;
      seen.push(`${type} ${obj.metadata.name}`);
      if (seen.length === 4) done();
    },
    (err) => { if (err && seen.length < 4) console.log(`watch ended: ${err}`); },
  );

  const created = await core.createNamespacedPod({ namespace, body: pod('web-1', { app: 'web' }) });
  assert.equal(created.metadata.name, 'web-1');
  assert.ok(created.metadata.uid, 'the created pod has a uid');
  assert.ok(created.metadata.resourceVersion, 'the created pod has a resourceVersion');
  await core.createNamespacedPod({ namespace, body: pod('db-1', { app: 'db' }) });
  console.log('ok created two pods');

  const all = await core.listNamespacedPod({ namespace });
  assert.deepEqual(all.items.map((p) => p.metadata.name).sort(), ['db-1', 'web-1']);
  const web = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
  assert.deepEqual(web.items.map((p) => p.metadata.name), ['web-1']);
  const byName = await core.listNamespacedPod({ namespace, fieldSelector: 'metadata.name=db-1' });
  assert.deepEqual(byName.items.map((p) => p.metadata.name), ['db-1']);
  console.log('ok listed with label and field selectors');

  const read = await core.readNamespacedPod({ name: 'web-1', namespace });
  assert.equal(read.spec.containers[0].image, 'busybox');
  const patched = await core.patchNamespacedPod(
    { name: 'web-1', namespace, body: { metadata: { labels: { tier: 'front' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  assert.equal(patched.metadata.labels.tier, 'front');
  console.log('ok read and merge-patched a pod');

  await core.deleteNamespacedPod({ name: 'db-1', namespace });
  console.log('ok deleted a pod');

  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`watch saw only: ${seen}`)), 10000));
  await Promise.race([allSeen, timeout]);
  assert.deepEqual(seen, ['ADDED web-1', 'ADDED db-1', 'MODIFIED web-1', 'DELETED db-1']);
  console.log(`ok watch saw ${seen.join(', ')}`);
  request.abort();

  // Errors arrive as Kubernetes Status objects the client understands.
  await assert.rejects(core.readNamespacedPod({ name: 'missing', namespace }), (err) => {
    assert.equal(err.code, 404);
    const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    assert.equal(body.reason, 'NotFound');
    return true;
  });
  await assert.rejects(core.createNamespacedPod({ namespace, body: pod('web-1', {}) }), (err) => {
    assert.equal(err.code, 409);
    return true;
  });
  console.log('ok 404 and 409 as Status objects');
}

main().then(() => {
  console.log('PASS');
  process.exit(0);
}).catch((err) => {
  console.log(`FAIL ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
