// What goes in and out of the Kubernetes translation. The input is parsed documents (no files, no
// positions): issues name a document by its index and a field path inside it, and the caller
// (cli/manifest/) turns those into file:line:col.
import type { Mount, PortSpec, Service, ServiceSpec, StackObject } from '../../common/resources/types.js';
import type { KubeIssue } from './findings.js';

export interface KubeTranslateOptions {
  /** Downgrade fields that cannot be honoured from errors to warnings, and drop them. */
  lenient: boolean;
}

export interface TranslatedObject {
  object: StackObject;
  /** The document it came from. */
  doc: number;
}

export interface KubeTranslation {
  objects: TranslatedObject[];
  errors: KubeIssue[];
  warnings: KubeIssue[];
}

/** Where a Kubernetes object lands: its name and the stack its namespace maps to. */
export interface KubeMeta {
  name: string;
  stack: string;
  labels?: Record<string, string>;
}

/** A ConfigMap's or Secret's keys, for env references and volumes in other documents. */
export interface KeyedData {
  doc: number;
  /** Native object name per key (one Config/Secret per key). */
  objectNames: ReadonlyMap<string, string>;
  /** Each key's content as text (Secret data decoded). */
  text: ReadonlyMap<string, string>;
}

export interface KubeLookup {
  configMap(stack: string, name: string): KeyedData | undefined;
  secret(stack: string, name: string): KeyedData | undefined;
}

/** A container port, kept so a Service's named targetPort can be resolved. */
export interface ContainerPort {
  name?: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** What a pod template becomes: most of a ServiceSpec, plus what the workload kind finishes. */
export interface PodTranslation {
  spec: Omit<ServiceSpec, 'image'> & { image?: string };
  containerPorts: ContainerPort[];
  hostPorts: PortSpec[];
  /** The pod's restartPolicy as written (Always, OnFailure, Never), if it was. */
  restartPolicy?: string;
  /** Mounts of a StatefulSet's volumeClaimTemplates, by claim name; the source is set per ordinal. */
  claimMounts: Array<{ claim: string; mount: Mount }>;
}

/** A translated workload, before Services are joined to it by selector. */
export interface Workload {
  doc: number;
  kind: 'Deployment' | 'DaemonSet' | 'StatefulSet' | 'Pod' | 'Job';
  name: string;
  stack: string;
  podLabels: Readonly<Record<string, string>>;
  /** One native service; a StatefulSet has one per ordinal. */
  services: Service[];
  containerPorts: ContainerPort[];
}
