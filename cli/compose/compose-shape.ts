// The structure of a Compose file, as the compose-spec defines it, in the shape language of
// shape.ts. This decides only what is well-formed Compose; what Tessera can honour is decided by
// translate.ts. Kept in step with the compose-spec schema by test/unit/compose-schema.test.ts,
// which checks both accept and reject the same documents.

import type { JsonType, Shape } from './shape.js';

const t = (...types: JsonType[]): Shape => ({ types });
const ANY: Shape = {};
const str = t('string');
const int = t('integer');
const bool = t('boolean');
const boolOrStr = t('boolean', 'string');
const intOrStr = t('integer', 'string');
const numOrStr = t('number', 'string');
const strOrInt = t('string', 'integer');

const EXTENSION: readonly [RegExp, Shape] = [/^x-/, ANY];
const NAME_KEY = /^[a-zA-Z0-9._-]+$/;
const ANY_KEY = /^.+$/;

interface ObjectOptions {
  /** Unknown keys allowed (default false). */
  open?: boolean;
  /** `x-` keys allowed (default true). */
  extensions?: boolean;
  required?: readonly string[];
  patterns?: ReadonlyArray<readonly [RegExp, Shape]>;
  types?: readonly JsonType[];
  noun?: string;
}

function obj(properties: Record<string, Shape>, options: ObjectOptions = {}): Shape {
  const patterns = [...(options.extensions === false ? [] : [EXTENSION]), ...(options.patterns ?? [])];
  return {
    types: options.types ?? ['object'],
    properties,
    ...(patterns.length > 0 ? { patternProperties: patterns } : {}),
    closed: options.open !== true,
    ...(options.required ? { required: options.required } : {}),
    ...(options.noun ? { noun: options.noun } : {}),
  };
}

/** A mapping whose keys match `key` and whose values are `value`; other keys are errors if closed. */
function mapOf(key: RegExp, value: Shape, closed: boolean, noun?: string): Shape {
  return { types: ['object'], patternProperties: [[key, value]], closed, ...(noun ? { noun } : {}) };
}

const listOf = (items: Shape, unique = false, noun?: string): Shape => ({
  types: ['array'],
  items,
  ...(unique ? { uniqueItems: true } : {}),
  ...(noun ? { noun } : {}),
});

const listOfStrings = listOf(str, true, 'a list of strings');
const stringOrList: Shape = { oneOf: [str, listOfStrings], noun: 'a string or a list of strings' };
const listOrDict: Shape = {
  oneOf: [mapOf(/.+/, t('string', 'number', 'boolean', 'null'), true), listOf(str, true)],
  noun: 'a mapping of KEY: value or a list of "KEY=value" strings',
};
const command: Shape = { oneOf: [t('null'), str, listOf(str)], noun: 'a string or a list of strings' };
const extraHosts: Shape = {
  oneOf: [mapOf(/.+/, { oneOf: [str, listOf(str)] }, true), listOf(str, true)],
  noun: 'a mapping of host: address or a list of "host:address" strings',
};
const ulimits = mapOf(
  /^[a-z]+$/,
  {
    oneOf: [intOrStr, obj({ hard: intOrStr, soft: intOrStr }, { required: ['soft', 'hard'] })],
    noun: 'a number or {soft, hard}',
  },
  false,
);
const serviceHook = obj(
  {
    command,
    user: str,
    privileged: boolOrStr,
    working_dir: str,
    environment: listOrDict,
  },
  { required: ['command'] },
);
const configOrSecretRefs = listOf({
  oneOf: [str, obj({ source: str, target: str, uid: str, gid: str, mode: numOrStr })],
  noun: 'a name or {source, target, uid, gid, mode}',
});
const devices = listOf(
  obj(
    {
      capabilities: listOfStrings,
      count: strOrInt,
      device_ids: listOfStrings,
      driver: str,
      options: listOrDict,
    },
    { required: ['capabilities'] },
  ),
);
const genericResources = listOf(
  obj({
    discrete_resource_spec: obj({ kind: str, value: numOrStr }),
  }),
);
// The compose-spec puts `additionalProperties: false` beside the oneOf of gpus, where it only
// applies to a mapping, which the oneOf refuses anyway; the items themselves are open.
const gpus: Shape = {
  oneOf: [
    { types: ['string'], enum: ['all'] },
    listOf(
      obj({ capabilities: listOfStrings, count: strOrInt, device_ids: listOfStrings, driver: str, options: listOrDict }, { open: true, extensions: false }),
    ),
  ],
  noun: '"all" or a list of GPU requests',
};
const blkioLimit = obj({ path: str, rate: intOrStr }, { extensions: false });
const blkioWeight = obj({ path: str, weight: intOrStr }, { extensions: false });
const updateConfig = obj({
  parallelism: intOrStr,
  delay: str,
  failure_action: str,
  monitor: str,
  max_failure_ratio: numOrStr,
  order: { types: ['string'], enum: ['start-first', 'stop-first'] },
});

const deployment = obj(
  {
    mode: str,
    endpoint_mode: str,
    replicas: intOrStr,
    labels: listOrDict,
    rollback_config: updateConfig,
    update_config: updateConfig,
    resources: obj({
      limits: obj({ cpus: numOrStr, memory: str, pids: intOrStr }),
      reservations: obj({ cpus: numOrStr, memory: str, generic_resources: genericResources, devices }),
    }),
    restart_policy: obj({ condition: str, delay: str, max_attempts: intOrStr, window: str }),
    placement: obj({
      constraints: listOf(str),
      preferences: listOf(obj({ spread: str })),
      max_replicas_per_node: intOrStr,
    }),
  },
  { types: ['object', 'null'] },
);

const development = obj(
  {
    watch: listOf(
      obj(
        {
          ignore: stringOrList,
          include: stringOrList,
          path: str,
          action: { types: ['string'], enum: ['rebuild', 'sync', 'restart', 'sync+restart', 'sync+exec'] },
          target: str,
          exec: serviceHook,
          initial_sync: bool,
        },
        { required: ['path', 'action'] },
      ),
    ),
  },
  { types: ['object', 'null'] },
);

const healthcheck = obj({
  disable: boolOrStr,
  interval: str,
  retries: numOrStr,
  test: { oneOf: [str, listOf(str)], noun: 'a string or a list of strings' },
  timeout: str,
  start_period: str,
  start_interval: str,
});

const build: Shape = {
  oneOf: [
    str,
    obj({
      context: str,
      dockerfile: str,
      dockerfile_inline: str,
      entitlements: listOf(str),
      args: listOrDict,
      ssh: listOrDict,
      labels: listOrDict,
      cache_from: listOf(str),
      cache_to: listOf(str),
      no_cache: boolOrStr,
      additional_contexts: listOrDict,
      network: str,
      provenance: t('string', 'boolean'),
      sbom: t('string', 'boolean'),
      pull: boolOrStr,
      target: str,
      shm_size: intOrStr,
      extra_hosts: extraHosts,
      isolation: str,
      privileged: boolOrStr,
      secrets: configOrSecretRefs,
      tags: listOf(str),
      ulimits,
      platforms: listOf(str),
    }),
  ],
  noun: 'a build context path or a build mapping',
};

const externalRef = (closed: boolean): Shape => ({
  types: ['boolean', 'string', 'object'],
  properties: { name: str },
  ...(closed ? { patternProperties: [EXTENSION], closed: true } : {}),
});

const ENV_FILE_ITEM = obj({ path: str, format: str, required: boolOrStr }, { extensions: false, required: ['path'] });

export const serviceShape: Shape = obj({
  develop: development,
  deploy: deployment,
  annotations: listOrDict,
  attach: boolOrStr,
  build,
  blkio_config: obj(
    {
      device_read_bps: listOf(blkioLimit),
      device_read_iops: listOf(blkioLimit),
      device_write_bps: listOf(blkioLimit),
      device_write_iops: listOf(blkioLimit),
      weight: intOrStr,
      weight_device: listOf(blkioWeight),
    },
    { extensions: false },
  ),
  cap_add: listOf(str, true),
  cap_drop: listOf(str, true),
  cgroup: { types: ['string'], enum: ['host', 'private'] },
  cgroup_parent: str,
  command,
  configs: configOrSecretRefs,
  container_name: { types: ['string'], pattern: /[a-zA-Z0-9][a-zA-Z0-9_.-]+/, noun: 'a container name' },
  cpu_count: { oneOf: [str, { types: ['integer'], minimum: 0 }] },
  cpu_percent: { oneOf: [str, { types: ['integer'], minimum: 0, maximum: 100 }] },
  cpu_shares: numOrStr,
  cpu_quota: numOrStr,
  cpu_period: numOrStr,
  cpu_rt_period: numOrStr,
  cpu_rt_runtime: numOrStr,
  cpus: numOrStr,
  cpuset: str,
  credential_spec: obj({ config: str, file: str, registry: str }),
  depends_on: {
    oneOf: [
      listOfStrings,
      mapOf(
        NAME_KEY,
        obj(
          {
            restart: boolOrStr,
            required: bool,
            condition: { types: ['string'], enum: ['service_started', 'service_healthy', 'service_completed_successfully'] },
          },
          { required: ['condition'] },
        ),
        true,
      ),
    ],
    noun: 'a list of service names or a mapping of service: {condition}',
  },
  device_cgroup_rules: listOfStrings,
  devices: listOf({ oneOf: [str, obj({ source: str, target: str, permissions: str }, { required: ['source'] })] }),
  dns: stringOrList,
  dns_opt: listOf(str, true),
  dns_search: stringOrList,
  domainname: str,
  entrypoint: command,
  env_file: { oneOf: [str, listOf({ oneOf: [str, ENV_FILE_ITEM] })], noun: 'a path or a list of paths or {path, required}' },
  label_file: { oneOf: [str, listOf(str)] },
  environment: listOrDict,
  expose: listOf(t('string', 'number'), true),
  extends: { oneOf: [str, obj({ service: str, file: str }, { extensions: false, required: ['service'] })] },
  provider: obj(
    {
      type: str,
      options: mapOf(ANY_KEY, { oneOf: [t('string', 'number', 'boolean'), listOf(t('string', 'number', 'boolean'))] }, false),
    },
    { required: ['type'] },
  ),
  external_links: listOf(str, true),
  extra_hosts: extraHosts,
  gpus,
  group_add: listOf(t('string', 'number'), true),
  healthcheck,
  hostname: str,
  image: str,
  init: boolOrStr,
  ipc: str,
  isolation: str,
  labels: listOrDict,
  links: listOf(str, true),
  logging: obj({ driver: str, options: mapOf(ANY_KEY, t('string', 'number', 'null'), false) }),
  mac_address: str,
  mem_limit: numOrStr,
  mem_reservation: t('string', 'integer'),
  mem_swappiness: intOrStr,
  memswap_limit: numOrStr,
  network_mode: str,
  models: {
    oneOf: [listOfStrings, mapOf(NAME_KEY, obj({ endpoint_var: str, model_var: str }), false)],
  },
  networks: {
    oneOf: [
      listOfStrings,
      mapOf(
        NAME_KEY,
        {
          oneOf: [
            obj({
              aliases: listOfStrings,
              interface_name: str,
              ipv4_address: str,
              ipv6_address: str,
              link_local_ips: listOfStrings,
              mac_address: str,
              driver_opts: mapOf(ANY_KEY, t('string', 'number'), false),
              priority: t('number'),
              gw_priority: t('number'),
            }),
            t('null'),
          ],
        },
        true,
      ),
    ],
    noun: 'a list of network names or a mapping of network: {aliases}',
  },
  oom_kill_disable: boolOrStr,
  oom_score_adj: { oneOf: [str, { types: ['integer'], minimum: -1000, maximum: 1000 }] },
  pid: t('string', 'null'),
  pids_limit: numOrStr,
  platform: str,
  ports: listOf(
    {
      oneOf: [
        t('number'),
        str,
        obj({
          name: str,
          mode: str,
          host_ip: str,
          target: intOrStr,
          published: strOrInt,
          protocol: str,
          app_protocol: str,
        }),
      ],
      noun: 'a port number, "published:target/protocol" or {target, published, protocol, mode}',
    },
    true,
  ),
  post_start: listOf(serviceHook),
  pre_stop: listOf(serviceHook),
  privileged: boolOrStr,
  profiles: listOfStrings,
  pull_policy: {
    types: ['string'],
    pattern: /always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+/,
    noun: 'always, never, missing, build, daily, weekly or every_<duration>',
  },
  pull_refresh_after: str,
  read_only: boolOrStr,
  restart: str,
  runtime: str,
  scale: intOrStr,
  security_opt: listOf(str, true),
  shm_size: numOrStr,
  secrets: configOrSecretRefs,
  sysctls: listOrDict,
  stdin_open: boolOrStr,
  stop_grace_period: str,
  stop_signal: str,
  storage_opt: t('object'),
  tmpfs: stringOrList,
  tty: boolOrStr,
  ulimits,
  use_api_socket: bool,
  user: str,
  uts: str,
  userns_mode: str,
  volumes: listOf(
    {
      oneOf: [
        str,
        obj(
          {
            type: { types: ['string'], enum: ['bind', 'volume', 'tmpfs', 'cluster', 'npipe', 'image'] },
            source: str,
            target: str,
            read_only: boolOrStr,
            consistency: str,
            bind: obj({
              propagation: str,
              create_host_path: boolOrStr,
              recursive: { types: ['string'], enum: ['enabled', 'disabled', 'writable', 'readonly'] },
              selinux: { types: ['string'], enum: ['z', 'Z'] },
            }),
            volume: obj({ labels: listOrDict, nocopy: boolOrStr, subpath: str }),
            tmpfs: obj({ size: { oneOf: [{ types: ['integer'], minimum: 0 }, str] }, mode: numOrStr }),
            image: obj({ subpath: str }),
          },
          { required: ['type'] },
        ),
      ],
      noun: 'a "source:target[:mode]" string or {type, source, target}',
    },
    true,
  ),
  volumes_from: listOf(str, true),
  working_dir: str,
});

export const networkShape: Shape = obj(
  {
    name: str,
    driver: str,
    driver_opts: mapOf(ANY_KEY, t('string', 'number'), false),
    ipam: obj({
      driver: str,
      config: listOf(
        obj({
          subnet: str,
          ip_range: str,
          gateway: str,
          aux_addresses: mapOf(ANY_KEY, str, true),
        }),
      ),
      options: mapOf(ANY_KEY, str, true),
    }),
    external: externalRef(true),
    internal: boolOrStr,
    enable_ipv4: boolOrStr,
    enable_ipv6: boolOrStr,
    attachable: boolOrStr,
    labels: listOrDict,
  },
  { types: ['object', 'null'] },
);

export const volumeShape: Shape = obj(
  {
    name: str,
    driver: str,
    driver_opts: mapOf(ANY_KEY, t('string', 'number'), false),
    external: externalRef(true),
    labels: listOrDict,
  },
  { types: ['object', 'null'] },
);

export const secretShape: Shape = obj({
  name: str,
  environment: str,
  file: str,
  external: externalRef(false),
  labels: listOrDict,
  driver: str,
  driver_opts: mapOf(ANY_KEY, t('string', 'number'), false),
  template_driver: str,
});

export const configShape: Shape = obj({
  name: str,
  content: str,
  environment: str,
  file: str,
  external: externalRef(false),
  labels: listOrDict,
  template_driver: str,
});

const modelShape = obj({ name: str, model: str, context_size: int, runtime_flags: listOf(str) }, { required: ['model'] });

const include: Shape = { oneOf: [str, obj({ path: stringOrList, env_file: stringOrList, project_directory: str }, { extensions: false })] };

export const composeShape: Shape = obj({
  version: str,
  name: str,
  include: listOf(include),
  services: mapOf(NAME_KEY, serviceShape, true, 'a mapping of service name: service'),
  models: mapOf(NAME_KEY, modelShape, false),
  networks: mapOf(NAME_KEY, networkShape, false),
  volumes: mapOf(NAME_KEY, volumeShape, true),
  secrets: mapOf(NAME_KEY, secretShape, true),
  configs: mapOf(NAME_KEY, configShape, true),
});
