// Kubernetes' hostUsers through the manifest loader: false is a user namespace of the service's own
// (userns: auto), true or absent the host's ids (no userns field), anything else an error naming it.
import test from 'ava';

import { formatIssue, loadManifestsFromText, ManifestError } from '../../cli/manifest/load.js';
import type { Service } from '../../common/resources/types.js';

function podWith(hostUsers: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
${hostUsers === '' ? '' : `      hostUsers: ${hostUsers}\n`}      containers: [{name: web, image: busybox}]
`;
}

function service(text: string): Service {
  const found = loadManifestsFromText(text, 'k.yaml', { lenient: false }).objects.find((o): o is Service => o.kind === 'Service');
  if (!found) throw new Error('no service translated');
  return found;
}

test('hostUsers: false runs the service in a user namespace of its own (userns: auto)', (t) => {
  t.is(service(podWith('false')).spec.userns, 'auto');
});

test('hostUsers: true or absent keeps the host ids (no userns field)', (t) => {
  t.is(service(podWith('true')).spec.userns, undefined);
  t.is(service(podWith('')).spec.userns, undefined);
});

test('a hostUsers that is not a boolean is an error naming the field', (t) => {
  const error = t.throws(() => service(podWith('"no"')), { instanceOf: ManifestError });
  t.deepEqual(error.issues.map(formatIssue), ['k.yaml:9:18: spec.template.spec.hostUsers: expected true or false, got "no"']);
});
