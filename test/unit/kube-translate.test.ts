// The Kubernetes translation, kind by kind, through the manifest loader (so positions are real).
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { formatIssue, loadManifests, loadManifestsFromText, ManifestError, type LoadResult } from '../../cli/manifest/load.js';
import type { Config, Secret, Service, StackObject, Volume } from '../../common/resources/types.js';

function load(text: string, lenient = false): LoadResult {
  return loadManifestsFromText(text, 'k.yaml', { lenient });
}

function errors(text: string, lenient = false): string[] {
  try {
    load(text, lenient);
  } catch (error) {
    if (error instanceof ManifestError) return error.issues.map(formatIssue);
    throw error;
  }
  throw new Error('expected a ManifestError');
}

const svc = (objects: readonly StackObject[], name: string): Service => {
  const found = objects.find((o): o is Service => o.kind === 'Service' && o.metadata.name === name);
  if (!found) throw new Error(`no service ${name} in ${objects.map((o) => o.metadata.name).join(', ')}`);
  return found;
};

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 0, maxUnavailable: 50%}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      terminationGracePeriodSeconds: 5
      nodeSelector: {disk: ssd, kubernetes.io/hostname: node-2}
      securityContext: {runAsUser: 1000, runAsGroup: 1000}
      containers:
      - name: web
        image: busybox:1.36
        command: [httpd]
        args: [-f, -p, "8080"]
        workingDir: /www
        ports:
        - {containerPort: 8080, name: http}
        resources:
          requests: {cpu: 250m, memory: 64Mi}
          limits: {cpu: "1", memory: 128M}
        livenessProbe:
          exec: {command: [wget, -q, -O-, localhost:8080]}
          periodSeconds: 5
          failureThreshold: 2
        readinessProbe:
          exec: {command: [wget, -q, -O-, localhost:8080]}
          periodSeconds: 5
          failureThreshold: 2
        securityContext:
          readOnlyRootFilesystem: true
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
`;

test('Deployment: replicas, strategy, process, resources, probe, security, placement', (t) => {
  const { objects, warnings } = load(DEPLOYMENT);
  t.deepEqual(warnings, []);
  t.deepEqual(objects, [
    {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'web', stack: 'shop' },
      spec: {
        image: 'busybox:1.36',
        command: ['httpd'],
        args: ['-f', '-p', '8080'],
        workdir: '/www',
        mode: 'replicated',
        replicas: 4,
        restart: { condition: 'any' },
        updateConfig: { parallelism: 2, order: 'stop-first' },
        resources: { reservations: { cpus: 0.25, memory: 64 * 1024 * 1024 }, limits: { cpus: 1, memory: 128_000_000 } },
        healthcheck: { test: ['CMD', 'wget', '-q', '-O-', 'localhost:8080'], intervalMs: 5000, timeoutMs: 1000, retries: 2, startPeriodMs: 0 },
        user: '1000:1000',
        readOnly: true,
        capAdd: ['NET_BIND_SERVICE'],
        capDrop: ['ALL'],
        placement: { constraints: ['node.labels.disk==ssd', 'node.hostname==node-2'] },
        stopGracePeriodMs: 5000,
        containerLabels: { app: 'web', tier: 'front' },
        expose: [{ port: 8080, protocol: 'tcp' }],
      },
    },
  ]);
});

test('Service: ClusterIP exposes, NodePort publishes, another name is an alias on the default network', (t) => {
  const { objects } = load(`${DEPLOYMENT}---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 8080, targetPort: http, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata: {name: www, namespace: shop}
spec:
  selector: {tier: front}
  ports: [{port: 8080}]
`);
  t.deepEqual(
    objects.map((o) => `${o.kind}/${o.metadata.stack ?? ''}/${o.metadata.name}`),
    ['Network/shop/default', 'Service/shop/web'],
  );
  const web = svc(objects, 'web');
  t.deepEqual(web.spec.ports, [{ target: 8080, published: 30080, protocol: 'tcp' }]);
  t.deepEqual(web.spec.networks, [{ name: 'default', aliases: ['www'] }]);
  t.deepEqual(web.spec.expose, [{ port: 8080, protocol: 'tcp' }]);
});

test('Service: headless → dnsrr; a port remap, a selector matching nothing or two workloads are refused', (t) => {
  const headless = load(
    `${DEPLOYMENT}---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  clusterIP: None\n  selector: {app: web}\n`,
  );
  t.is(svc(headless.objects, 'web').spec.endpointMode, 'dnsrr');
  const remap = errors(
    `${DEPLOYMENT}---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {app: web}\n  ports:\n  - {port: 80, targetPort: 8080}\n`,
  );
  t.deepEqual(remap, [
    'k.yaml:48:12: spec.ports[0].port: not supported (a Tessera VIP forwards to the container port unchanged: port 80 must equal targetPort 8080)',
  ]);
  const nothing = errors(`${DEPLOYMENT}---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\nspec:\n  selector: {app: db}\n`);
  t.regex(nothing[0]!, /^k\.yaml:46:13: spec\.selector: not supported \(selects no Deployment/);
  const wrongNamespace = errors(`${DEPLOYMENT}---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n`);
  t.regex(wrongNamespace[0]!, /spec\.selector: not supported \(selects no/);
});

test('DaemonSet → global; Pod → one replica with its restart policy; Job → replicated-job', (t) => {
  const { objects } = load(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: once, labels: {app: once}}
spec:
  restartPolicy: OnFailure
  containers: [{name: o, image: busybox, args: [sh, -c, "exit 0"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  completions: 2
  parallelism: 2
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox, command: ["true"]}]
`);
  t.like(svc(objects, 'agent').spec, { mode: 'global', restart: { condition: 'any' }, updateConfig: { parallelism: 1, order: 'stop-first' } });
  t.like(svc(objects, 'once').spec, { mode: 'replicated', replicas: 1, restart: { condition: 'on-failure' }, args: ['sh', '-c', 'exit 0'] });
  t.like(svc(objects, 'migrate').spec, { mode: 'replicated-job', replicas: 2, restart: { condition: 'on-failure', maxAttempts: 3 } });
  t.deepEqual(
    errors(
      `apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completions: 3\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: busybox}]\n`,
    ),
    ['k.yaml:4:1: spec.parallelism: not supported (all 3 completions run at once in Tessera; set parallelism to 3 (it is 1))'],
  );
});

test('StatefulSet: one service per ordinal with its own volume per claim template', (t) => {
  const { objects } = load(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  podManagementPolicy: Parallel
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: busybox
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce]}
`);
  t.deepEqual(
    objects.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Volume/data-db-0', 'Volume/data-db-1', 'Service/db-0', 'Service/db-1'],
  );
  t.deepEqual((objects[0] as Volume).spec, { driver: 'local' });
  t.like(svc(objects, 'db-1').spec, { replicas: 1, hostname: 'db-1', mounts: [{ type: 'volume', source: 'data-db-1', target: '/data' }] });
  // The default ordered start is not honoured: refused, naming the field.
  t.regex(
    errors(
      `apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: busybox}]}\n`,
    )[0]!,
    /^k\.yaml:4:1: spec\.podManagementPolicy: not supported \(ordered start/,
  );
});

test('ConfigMap and Secret: one object per key, env references resolved, volumes become configs and secrets', (t) => {
  const { objects } = load(`apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {mode: fast, nginx.conf: "server {}\\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: aHVudGVyMg==}
stringData: {user: admin}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: p
    image: busybox
    env:
    - {name: MODE, valueFrom: {configMapKeyRef: {name: app, key: mode}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    envFrom: [{secretRef: {name: creds}, prefix: DB_}]
    volumeMounts:
    - {name: conf, mountPath: /etc/nginx/nginx.conf, subPath: nginx.conf}
    - {name: secret, mountPath: /run/creds, readOnly: true}
    - {name: scratch, mountPath: /tmp}
    - {name: cache, mountPath: /cache}
  volumes:
  - {name: conf, configMap: {name: app}}
  - {name: secret, secret: {secretName: creds, defaultMode: 0400}}
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: cache, hostPath: {path: /var/cache/p, type: DirectoryOrCreate}}
`);
  t.deepEqual(
    objects.filter((o) => o.kind === 'Config').map((o) => [o.metadata.name, Buffer.from((o as Config).spec.data, 'base64').toString()]),
    [
      ['app.mode', 'fast'],
      ['app.nginx.conf', 'server {}\n'],
    ],
  );
  t.deepEqual(
    objects.filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, Buffer.from((o as Secret).spec.data, 'base64').toString()]),
    [
      ['creds.password', 'hunter2'],
      ['creds.user', 'admin'],
    ],
  );
  const p = svc(objects, 'p');
  t.deepEqual(p.spec.env, { DB_password: 'hunter2', DB_user: 'admin', MODE: 'fast', PASSWORD: 'hunter2' });
  t.deepEqual(p.spec.configs, [{ source: 'app.nginx.conf', target: '/etc/nginx/nginx.conf' }]);
  t.deepEqual(p.spec.secrets, [
    { source: 'creds.password', target: '/run/creds/password', mode: 0o400 },
    { source: 'creds.user', target: '/run/creds/user', mode: 0o400 },
  ]);
  t.deepEqual(p.spec.mounts, [
    { type: 'tmpfs', target: '/tmp', sizeBytes: 16 * 1024 * 1024 },
    { type: 'bind', source: '/var/cache/p', target: '/cache', createHostPath: true },
  ]);
  // A reference to a ConfigMap the files do not hold cannot be resolved.
  t.deepEqual(
    errors(
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: p\n    image: busybox\n    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: other, key: x}}}\n',
    ),
    [
      'k.yaml:9:46: spec.containers[0].env[0].valueFrom.configMapKeyRef: not supported (ConfigMap "other" with key "x" is not in the files applied together: values are resolved when translating)',
    ],
  );
});

test('Namespace → stack; PersistentVolumeClaim → Volume; unknown kinds and versions are refused by field', (t) => {
  const { objects } = load(
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: dev}\nspec: {accessModes: [ReadWriteOnce]}\n',
  );
  t.deepEqual(objects, [{ apiVersion: 'tessera/v1', kind: 'Volume', metadata: { name: 'data', stack: 'dev' }, spec: { driver: 'local' } }]);
  t.deepEqual(errors('apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n'), [
    'k.yaml:2:7: kind: not supported (Ingress is not translated; the Kubernetes kinds Tessera takes are Deployment, DaemonSet, StatefulSet, Job, Pod, Service, ConfigMap, Secret, Namespace, PersistentVolumeClaim)',
  ]);
  t.deepEqual(errors('apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: d}\n'), [
    'k.yaml:1:13: apiVersion: not supported (Deployment is read as apps/v1, got "extensions/v1beta1")',
  ]);
});

test('one container per pod: init containers and sidecars are refused by field; affinity only when simple', (t) => {
  const issues = errors(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: i, image: busybox}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: zone, operator: In, values: [a, b]}
  containers:
  - name: p
    image: busybox
    lifecycle: {preStop: {exec: {command: [sleep, "1"]}}}
  - {name: q, image: busybox}
`);
  t.deepEqual(issues, [
    "k.yaml:5:19: spec.initContainers: not supported (one container per pod: each Tessera task runs one container; run the setup in the container's command or as a separate job)",
    'k.yaml:11:13: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]: not supported (only a required node affinity with one term of In/NotIn expressions of one value each is translated, got In with 2 value(s))',
    'k.yaml:15:16: spec.containers[0].lifecycle: not supported (no post-start or pre-stop hooks)',
    'k.yaml:16:5: spec.containers[1]: not supported (one container per pod: each Tessera task runs one container; sidecars are not supported (2 containers))',
  ]);
  const simple = load(
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: zone, operator: NotIn, values: [b]}]\n  containers: [{name: p, image: busybox}]\n',
  );
  t.deepEqual(svc(simple.objects, 'p').spec.placement, { constraints: ['node.labels.zone!=b'] });
});

test('--lenient: refusals become warnings and the fields are dropped; malformed input stays an error', (t) => {
  const text =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: p\n    image: busybox\n    volumeDevices: [{name: d, devicePath: /dev/xvda}]\n    lifecycle: {}\n    ports: [{containerPort: 80, hostIP: 127.0.0.1}]\n';
  // `lifecycle: {}` asks for nothing; volumeDevices and hostIP are refused.
  const expected = [
    'k.yaml:8:20: spec.containers[0].volumeDevices: not supported (no raw block devices)',
    'k.yaml:10:41: spec.containers[0].ports[0].hostIP: not supported (host ports listen on every address of the node)',
  ];
  t.deepEqual(errors(text), expected);
  const { objects, warnings } = load(text, true);
  t.deepEqual(warnings.map(formatIssue), expected);
  t.like(svc(objects, 'p').spec, { image: 'busybox', expose: [{ port: 80, protocol: 'tcp' }] });
  t.deepEqual(
    errors('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: p, image: busybox, ports: [{containerPort: "eighty"}]}\n', true),
    ['k.yaml:6:55: spec.containers[0].ports[0].containerPort: expected an integer >= 1, got "eighty"'],
  );
});

test('container stdin and tty → spec.stdinOpen and spec.tty; stdinOnce is accepted; false writes nothing', (t) => {
  const pod = (fields: string): string => `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: p, image: busybox, ${fields}}\n`;
  const both = svc(load(pod('stdin: true, stdinOnce: true, tty: true')).objects, 'p').spec;
  t.true(both.stdinOpen);
  t.true(both.tty);
  const neither = svc(load(pod('stdin: false, tty: false')).objects, 'p').spec;
  t.is(neither.stdinOpen, undefined);
  t.is(neither.tty, undefined);
  t.deepEqual(errors(pod('tty: "yes"')), ['k.yaml:6:36: spec.containers[0].tty: expected true or false, got "yes"']);
});

test('a directory: Kubernetes documents of all files are translated together, in sorted order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-kube-dir-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'b-service.yaml'),
    'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]\n',
  );
  await writeFile(
    join(dir, 'a-deploy.yml'),
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: w, image: busybox}]}\n',
  );
  await writeFile(join(dir, 'c-native.json'), JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Network', metadata: { name: 'back' }, spec: {} }));
  const { objects } = await loadManifests(dir);
  t.deepEqual(
    objects.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Network/back', 'Service/web'],
  );
  t.deepEqual(svc(objects, 'web').spec.ports, [{ target: 80, published: 30080, protocol: 'tcp' }]);
});
