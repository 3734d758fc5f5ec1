// What `tsctl stack deploy --dry-run` says about the builds it would run, as YAML comment lines
// above the objects, so the output stays one YAML stream that tools can read.

import { renderTable } from '../output/table.js';
import type { ComposeBuildJob } from './build-plan.js';

/** The build jobs as a commented table; '' when there are none. */
export function renderBuildPlan(jobs: readonly ComposeBuildJob[], skipped = false): string {
  if (jobs.length === 0) return '';
  const rows = jobs.map((job) => [
    job.services.join(', '),
    job.context,
    job.request.dockerfileInline !== undefined ? '(inline)' : job.request.dockerfilePath,
    job.request.target ?? '-',
    Object.keys(job.request.buildArgs).join(', ') || '-',
    job.request.tags.join(', '),
  ]);
  const table = renderTable(['services', 'context', 'dockerfile', 'target', 'args', 'tags'], rows);
  const head = skipped
    ? '# builds skipped (--no-build): the services run these images as they are in the cluster:'
    : '# builds, run one at a time before anything is applied; each service then runs its image by digest:';
  return `${head}\n${table
    .trimEnd()
    .split('\n')
    .map((line) => `# ${line}`)
    .join('\n')}\n`;
}
