// What Tessera does with every key of the compose-spec. The translator rejects every key marked
// "rejected" (with this reason), docs/compose.md is generated from this table, and a unit test
// walks the published schema to check the table covers every key. Paths use `*` for a name the
// user chooses and `[]` for the items of a list. A key under a rejected key (or a `wholeKey`) needs
// no entry.

import { NODE_PLATFORM } from './platform.js';

export type KeyStatusKind = 'honoured' | 'partial' | 'rejected' | 'ignored';

export interface KeyStatus {
  status: KeyStatusKind;
  /** For partial: what is and is not honoured; for rejected and ignored: why. */
  note?: string;
  /** The keys under it are handled with it as a whole (like those under a rejected key), not one by one. */
  wholeKey?: true;
}

const ok = (note?: string): KeyStatus => ({ status: 'honoured', ...(note ? { note } : {}) });
const partial = (note: string): KeyStatus => ({ status: 'partial', note });
const no = (note: string): KeyStatus => ({ status: 'rejected', note });
const ignored = (note: string): KeyStatus => ({ status: 'ignored', note });

const CPU_KNOBS = 'fine-grained CPU knobs are not supported; use deploy.resources.limits.cpus';
const NO_HOST_SHARING = "Tessera gives every task its own namespaces; sharing the host's or another container's is not supported";
const NOT_YET = (what: string) => `${what} is not supported by Tessera yet`;
const BUILD_NOTE =
  'built by `tsctl stack deploy` before anything is applied, on the manager it talks to; the service then runs the built image by its digest. Without image: the image is named `<stack>-<service>` (as `docker compose build` names it); with image: the build produces that reference (as `docker compose up --build` does; `docker stack deploy` would ignore build:). Services with the same build share one';
const BUILD_STEP = (what: string) => `${what}: a build step runs as a default container, with no more privilege or host access`;
const UPDATE_KEYS = (which: string): Record<string, KeyStatus> =>
  Object.fromEntries(['parallelism', 'delay', 'failure_action', 'monitor', 'max_failure_ratio', 'order'].map((k) => [`services.*.deploy.${which}.${k}`, ok()]));

export const COMPOSE_KEYS: Readonly<Record<string, KeyStatus>> = {
  version: ignored('obsolete; the compose-spec says to ignore it'),
  name: ignored('the stack name is the NAME argument of `tsctl stack deploy`'),
  include: no(NOT_YET('including other Compose projects') + '; pass the files with several -c instead'),
  models: no(NOT_YET('AI models')),
  services: ok(),
  networks: ok(),
  volumes: ok(),
  secrets: ok(),
  configs: ok(),
  'services.*': ok('one Service object per Compose service, named after it (must be a DNS label)'),

  'services.*.annotations': no(NOT_YET('OCI annotations')),
  'services.*.attach': no('log attachment is a `docker compose up` behaviour; use `tsctl logs`'),
  'services.*.blkio_config': no(NOT_YET('block IO control')),
  'services.*.build': ok(BUILD_NOTE),
  'services.*.build.context': partial(
    'a directory, relative to the project directory (inside it unless --allow-outside-files); a URL or Git context is refused',
  ),
  'services.*.build.dockerfile': ok('relative to the context; one outside the context is read on this machine and sent with it'),
  'services.*.build.dockerfile_inline': ok('at most 1 MiB'),
  'services.*.build.args': ok("a name without a value takes this machine's value; unset, the Dockerfile's default applies"),
  'services.*.build.labels': ok('labels of the built image'),
  'services.*.build.target': ok(),
  'services.*.build.tags': ok('more names for the built image'),
  'services.*.build.no_cache': ok(),
  'services.*.build.pull': partial('accepted; FROM images are used from the building node when it has them, pulled otherwise (true says so in a warning)'),
  'services.*.build.cache_from': partial(
    "image references are accepted (the building node's step cache already holds the steps of every image built there); registry and other exported caches (type=registry, a reference naming a registry host…) are ignored with a warning",
  ),
  'services.*.build.network': partial('default and none, which are the same here: RUN steps get loopback only; host and named networks are refused'),
  'services.*.build.platforms': partial(`only ${NODE_PLATFORM}, the nodes' platform; others are refused`),
  'services.*.build.provenance': partial('false only: Tessera builds make no attestations'),
  'services.*.build.sbom': partial('false only: Tessera builds make no attestations'),
  'services.*.build.ssh': no(BUILD_STEP('SSH agents and keys are not forwarded into builds')),
  'services.*.build.secrets': no(BUILD_STEP('secrets are not mounted into build steps')),
  'services.*.build.additional_contexts': no(NOT_YET('more than one build context')),
  'services.*.build.cache_to': no('Tessera builds keep their step cache on the building node; there is no cache export'),
  'services.*.build.entitlements': no(BUILD_STEP('builds get no entitlements')),
  'services.*.build.privileged': no(BUILD_STEP('builds are never privileged')),
  'services.*.build.extra_hosts': no(NOT_YET('adding hosts to build steps')),
  'services.*.build.isolation': no('Windows only'),
  'services.*.build.shm_size': no(NOT_YET('sizing /dev/shm of build steps')),
  'services.*.build.ulimits': no(NOT_YET('setting ulimits of build steps')),
  'services.*.cap_add': ok(),
  'services.*.cap_drop': ok(),
  'services.*.cgroup': no(NO_HOST_SHARING),
  'services.*.cgroup_parent': no('Tessera places every task in its own cgroup'),
  'services.*.command': ok("becomes spec.args (the image's CMD is replaced)"),
  'services.*.configs': ok(),
  'services.*.configs[].source': ok(),
  'services.*.configs[].target': ok(),
  'services.*.configs[].uid': ok(),
  'services.*.configs[].gid': ok(),
  'services.*.configs[].mode': ok(),
  'services.*.container_name': partial(
    'replicas cannot share one name: it becomes a network alias of the service on each of its networks, so others still reach it by that name',
  ),
  'services.*.cpu_count': no(CPU_KNOBS),
  'services.*.cpu_percent': no(CPU_KNOBS),
  'services.*.cpu_shares': no(CPU_KNOBS),
  'services.*.cpu_quota': no(CPU_KNOBS),
  'services.*.cpu_period': no(CPU_KNOBS),
  'services.*.cpu_rt_period': no(CPU_KNOBS),
  'services.*.cpu_rt_runtime': no(CPU_KNOBS),
  'services.*.cpus': ok('becomes resources.limits.cpus unless deploy.resources.limits.cpus is set'),
  'services.*.cpuset': no(CPU_KNOBS),
  'services.*.credential_spec': no('Windows only'),
  'services.*.depends_on': ok(
    'start order: new tasks wait (pending, with the reason) until each dependency has a running task (service_started), a running healthy one (service_healthy, which Swarm ignores) or has run to completion with exit code 0 in every slot (service_completed_successfully, for jobs)',
  ),
  'services.*.depends_on.*.condition': ok('service_started, service_healthy, service_completed_successfully'),
  'services.*.depends_on.*.restart': partial(
    'restart: true is refused by the cluster: restarting a service when its dependency is updated is not implemented yet',
  ),
  'services.*.depends_on.*.required': ok(),
  'services.*.deploy': ok(),
  'services.*.deploy.mode': ok(
    'replicated, global, replicated-job or global-job (jobs run to completion: a task that exits 0 is not replaced; restart_policy defaults to on-failure and may not be any)',
  ),
  'services.*.deploy.endpoint_mode': ok('vip or dnsrr'),
  'services.*.deploy.replicas': ok(),
  'services.*.deploy.labels': ok('labels of the Service object (metadata.labels)'),
  'services.*.deploy.rollback_config': ok(),
  ...UPDATE_KEYS('rollback_config'),
  'services.*.deploy.update_config': ok(),
  ...UPDATE_KEYS('update_config'),
  'services.*.deploy.resources': ok(),
  'services.*.deploy.resources.limits': ok(),
  'services.*.deploy.resources.limits.cpus': ok(),
  'services.*.deploy.resources.limits.memory': ok(),
  'services.*.deploy.resources.limits.pids': ok(),
  'services.*.deploy.resources.reservations': ok(),
  'services.*.deploy.resources.reservations.cpus': ok(),
  'services.*.deploy.resources.reservations.memory': ok(),
  'services.*.deploy.resources.reservations.generic_resources': no(NOT_YET('generic resources')),
  'services.*.deploy.resources.reservations.devices': no(NOT_YET('device (GPU) reservations')),
  'services.*.deploy.restart_policy': ok(),
  'services.*.deploy.restart_policy.condition': ok('none, on-failure or any'),
  'services.*.deploy.restart_policy.delay': ok(),
  'services.*.deploy.restart_policy.max_attempts': ok(),
  'services.*.deploy.restart_policy.window': ok('max_attempts counts only the failures inside the window; restarts resume once older ones age out'),
  'services.*.deploy.placement': ok(),
  'services.*.deploy.placement.constraints': ok('node.labels.KEY, node.role, node.hostname... with == and !='),
  'services.*.deploy.placement.preferences': ok(),
  'services.*.deploy.placement.preferences[].spread': ok(),
  'services.*.deploy.placement.max_replicas_per_node': ok(),
  'services.*.develop': no('file watching is a `docker compose watch` development feature, not a deployment'),
  'services.*.device_cgroup_rules': no(NOT_YET('device access')),
  'services.*.devices': no(NOT_YET('device access')),
  'services.*.dns': ok("written to /etc/resolv.conf; replaces the overlay network's resolver, as in Docker"),
  'services.*.dns_opt': ok(),
  'services.*.dns_search': ok(),
  'services.*.domainname': no(NOT_YET('setting the NIS domain name')),
  'services.*.entrypoint': ok("becomes spec.command (the image's ENTRYPOINT is replaced)"),
  'services.*.env_file': ok("read on this machine when deploying, relative to the first file's directory; environment: wins"),
  'services.*.env_file[].path': ok(),
  'services.*.env_file[].required': ok(),
  'services.*.env_file[].format': no('only the default .env format is supported; remove format'),
  'services.*.environment': ok("a name without a value takes it from this machine's environment"),
  'services.*.expose': ok('informational: every port of a task is reachable on its networks'),
  'services.*.extends': no(NOT_YET('extends') + '; copy the keys into the service or use an override file with -c'),
  'services.*.external_links': no('links to containers outside the stack are not supported; attach an external network'),
  'services.*.extra_hosts': ok('written to /etc/hosts'),
  'services.*.gpus': no(NOT_YET('GPU access')),
  'services.*.group_add': no(NOT_YET('supplementary groups')),
  'services.*.healthcheck': ok('run by the agent inside the container'),
  'services.*.healthcheck.disable': ok(),
  'services.*.healthcheck.interval': ok(),
  'services.*.healthcheck.retries': ok(),
  'services.*.healthcheck.test': ok(),
  'services.*.healthcheck.timeout': ok(),
  'services.*.healthcheck.start_period': ok(),
  'services.*.healthcheck.start_interval': ok(),
  'services.*.hostname': ok(),
  'services.*.image': ok(),
  'services.*.init': ok('tini (static, from the node) runs as PID 1: reaps zombies, forwards signals'),
  'services.*.ipc': no(NO_HOST_SHARING),
  'services.*.isolation': no('Windows only'),
  'services.*.label_file': no(NOT_YET('label files') + '; write the labels under labels:'),
  'services.*.labels': ok('labels of the containers (spec.containerLabels)'),
  'services.*.links': no('services reach each other by name on shared networks; remove links (use a network alias for another name)'),
  'services.*.logging': partial("recorded in spec.logging; the agent keeps every task's output for `tsctl logs` whatever the driver"),
  'services.*.logging.driver': partial('recorded; see logging'),
  'services.*.logging.options': partial('recorded; see logging'),
  'services.*.mac_address': no('Tessera assigns addresses'),
  'services.*.mem_limit': ok('becomes resources.limits.memory unless deploy.resources.limits.memory is set'),
  'services.*.mem_reservation': ok('becomes resources.reservations.memory unless deploy sets it'),
  'services.*.mem_swappiness': no(NOT_YET('swap control')),
  'services.*.memswap_limit': no(NOT_YET('swap control')),
  'services.*.models': no(NOT_YET('AI models')),
  'services.*.network_mode': no(NO_HOST_SHARING + "; services join the stack's networks"),
  'services.*.networks': ok(),
  'services.*.networks.*.aliases': ok(),
  'services.*.networks.*.interface_name': no('Tessera names the interfaces'),
  'services.*.networks.*.ipv4_address': no('Tessera assigns addresses; a replicated service cannot have one fixed address'),
  'services.*.networks.*.ipv6_address': no('Tessera assigns addresses; a replicated service cannot have one fixed address'),
  'services.*.networks.*.link_local_ips': no('Tessera assigns addresses'),
  'services.*.networks.*.mac_address': no('Tessera assigns addresses'),
  'services.*.networks.*.driver_opts': no(NOT_YET('per-attachment driver options')),
  'services.*.networks.*.priority': no(NOT_YET('network priorities')),
  'services.*.networks.*.gw_priority': no(NOT_YET('choosing the gateway network')),
  'services.*.oom_kill_disable': no('a task over its memory limit is always killed'),
  'services.*.oom_score_adj': no(NOT_YET('OOM score adjustment')),
  'services.*.pid': no(NO_HOST_SHARING),
  'services.*.pids_limit': ok('becomes resources.limits.pids unless deploy sets it'),
  'services.*.platform': partial(`accepted when it is ${NODE_PLATFORM}, the nodes' platform; any other is refused`),
  'services.*.ports': ok(),
  'services.*.ports[].name': no(NOT_YET('named ports')),
  'services.*.ports[].mode': ok("ingress (every node) or host (the task's node)"),
  'services.*.ports[].host_ip': no(NOT_YET('publishing on one host address')),
  'services.*.ports[].target': ok(),
  'services.*.ports[].published': ok(),
  'services.*.ports[].protocol': ok('tcp or udp'),
  'services.*.ports[].app_protocol': no(NOT_YET('application protocol hints')),
  'services.*.post_start': no(NOT_YET('lifecycle hooks')),
  'services.*.pre_stop': no(NOT_YET('lifecycle hooks')),
  'services.*.privileged': no('Tessera does not run privileged containers; use cap_add for what is needed'),
  'services.*.profiles': no(NOT_YET('profiles') + '; put optional services in an override file'),
  'services.*.provider': no(NOT_YET('provider services')),
  'services.*.pull_policy': no('nodes pull an image when they do not have it; use `tsctl image pull` to refresh'),
  'services.*.pull_refresh_after': no('nodes pull an image when they do not have it; use `tsctl image pull` to refresh'),
  'services.*.read_only': ok(),
  'services.*.restart': partial(
    'no, always, on-failure[:N] and unless-stopped become the restart policy unless deploy.restart_policy is set; unless-stopped acts as always',
  ),
  'services.*.runtime': no('Tessera runs every container with its own built-in runtime; there is no other to choose'),
  'services.*.scale': ok('becomes replicas unless deploy.replicas is set'),
  'services.*.secrets': ok('mounted under /run/secrets on a tmpfs'),
  'services.*.secrets[].source': ok(),
  'services.*.secrets[].target': ok(),
  'services.*.secrets[].uid': ok(),
  'services.*.secrets[].gid': ok(),
  'services.*.secrets[].mode': ok(),
  'services.*.security_opt': no(NOT_YET('security options')),
  'services.*.shm_size': no(NOT_YET('sizing /dev/shm') + '; mount a tmpfs at /dev/shm with tmpfs options'),
  'services.*.stdin_open': ok('becomes spec.stdinOpen: stdin stays open and delivers nothing (nobody attaches), as `docker run -i` detached'),
  'services.*.stop_grace_period': ok(),
  'services.*.stop_signal': ok(),
  'services.*.storage_opt': no(NOT_YET('storage driver options')),
  'services.*.sysctls': ok(),
  'services.*.tmpfs': ok('becomes tmpfs mounts'),
  'services.*.tty': ok("becomes spec.tty: a pseudo-terminal as stdin/stdout/stderr; its output is the task's log (stdout)"),
  'services.*.ulimits': ok(),
  'services.*.ulimits.*.soft': ok(),
  'services.*.ulimits.*.hard': ok(),
  'services.*.use_api_socket': no('Tessera does not expose its API socket to containers'),
  'services.*.user': ok(),
  'services.*.userns_mode': partial(
    "auto (as in Podman): the service's tasks run in a user namespace of their own (spec.userns: auto); host: the host's ids, Docker's default. Other modes are refused",
  ),
  'services.*.uts': no(NO_HOST_SHARING),
  'services.*.volumes': ok('named volumes, bind mounts and tmpfs; types cluster, npipe and image are rejected'),
  'services.*.volumes[].type': ok('volume, bind or tmpfs'),
  'services.*.volumes[].source': ok("bind sources are paths on the node that runs the task; relative ones are resolved against the first file's directory"),
  'services.*.volumes[].target': ok(),
  'services.*.volumes[].read_only': ok(),
  'services.*.volumes[].consistency': ignored('has no effect on Linux (Docker Desktop only)'),
  'services.*.volumes[].bind': ok(),
  'services.*.volumes[].bind.propagation': ok(),
  'services.*.volumes[].bind.create_host_path': ok(),
  'services.*.volumes[].bind.recursive': no(NOT_YET('recursive bind mount options')),
  'services.*.volumes[].bind.selinux': no('Tessera nodes do not use SELinux labels'),
  'services.*.volumes[].volume': ok(),
  'services.*.volumes[].volume.labels': no(NOT_YET('labels on anonymous volumes')),
  'services.*.volumes[].volume.nocopy': ok(),
  'services.*.volumes[].volume.subpath': ok(),
  'services.*.volumes[].tmpfs': ok(),
  'services.*.volumes[].tmpfs.size': ok(),
  'services.*.volumes[].tmpfs.mode': ok(),
  'services.*.volumes[].image': no(NOT_YET('image volumes')),
  'services.*.volumes_from': no('use a named volume shared by both services'),
  'services.*.working_dir': ok(),

  'networks.*': ok('a Network object of the stack; the implicit network "default" is made for services without networks:'),
  'networks.*.name': ok('names the Network object'),
  'networks.*.driver': partial("overlay and bridge both mean Tessera's cluster network; other drivers are rejected"),
  'networks.*.driver_opts': no(NOT_YET('network driver options')),
  'networks.*.ipam': partial('only config[].subnet'),
  'networks.*.ipam.driver': no('Tessera has one address manager'),
  'networks.*.ipam.config': ok(),
  'networks.*.ipam.config[].subnet': ok(),
  'networks.*.ipam.config[].ip_range': no(NOT_YET('address ranges inside a subnet')),
  'networks.*.ipam.config[].gateway': no('Tessera assigns the gateway'),
  'networks.*.ipam.config[].aux_addresses': no(NOT_YET('reserved addresses')),
  'networks.*.ipam.options': no(NOT_YET('IPAM options')),
  'networks.*.external': ok('not created; services attach to the existing network'),
  'networks.*.external.name': ok(),
  'networks.*.internal': ok(),
  'networks.*.enable_ipv4': partial('true (the default) only; IPv4 cannot be turned off'),
  'networks.*.enable_ipv6': partial('false (the default) only; Tessera networks have no IPv6 yet'),
  'networks.*.attachable': ok(),
  'networks.*.labels': ok(),

  'volumes.*': ok('a Volume object of the stack: a directory on the node that runs the task'),
  'volumes.*.name': ok('names the Volume object'),
  'volumes.*.driver': partial('local only'),
  'volumes.*.driver_opts': ok('options of the local driver (type, device, o)'),
  'volumes.*.external': ok('not created; a Volume of that name must exist in the default stack (tsctl apply it first)'),
  'volumes.*.external.name': ok(),
  'volumes.*.labels': ok(),

  'secrets.*': ok('a Secret object of the stack holding the content'),
  'secrets.*.name': ok('names the Secret object'),
  'secrets.*.environment': ok("the content is this machine's environment variable"),
  'secrets.*.file': ok('the content is read on this machine when deploying'),
  'secrets.*.external': ok('not created; must exist in the cluster'),
  'secrets.*.external.name': ok(),
  'secrets.*.labels': ok(),
  'secrets.*.driver': no(NOT_YET('secret drivers')),
  'secrets.*.driver_opts': no(NOT_YET('secret drivers')),
  'secrets.*.template_driver': no(NOT_YET('templated secrets')),

  'configs.*': ok('a Config object of the stack holding the content'),
  'configs.*.name': ok('names the Config object'),
  'configs.*.content': ok(),
  'configs.*.environment': ok("the content is this machine's environment variable"),
  'configs.*.file': ok('the content is read on this machine when deploying'),
  'configs.*.external': ok('not created; must exist in the cluster'),
  'configs.*.external.name': ok(),
  'configs.*.labels': ok(),
  'configs.*.template_driver': no(NOT_YET('templated configs')),
};

/** Every prefix of a table path, to tell a fixed key from a user-chosen name while walking a model. */
const PREFIXES: ReadonlySet<string> = new Set(
  Object.keys(COMPOSE_KEYS).flatMap((path) => {
    const out: string[] = [];
    for (let i = 0; i < path.length; i++) if (path[i] === '.' || path.startsWith('[]', i)) out.push(path.slice(0, i));
    out.push(path);
    return out;
  }),
);

/** Table path of `key` under `parent` ('' at the top level), or undefined outside the table. */
export function childPath(parent: string, key: string): string | undefined {
  const literal = parent === '' ? key : `${parent}.${key}`;
  if (PREFIXES.has(literal)) return literal;
  const any = parent === '' ? '*' : `${parent}.*`;
  return PREFIXES.has(any) ? any : undefined;
}

export function itemPath(parent: string): string | undefined {
  return PREFIXES.has(`${parent}[]`) ? `${parent}[]` : undefined;
}
