// Bounds on what a Dockerfile may ask of the planner. The Dockerfile arrives from the user (or a
// Compose file, or a base image's ONBUILD triggers) and planning runs inside the API server's
// process, so every dimension that could make it use unbounded memory or time is capped, and the
// error names the limit. Docker itself has no such limits; these are far above real Dockerfiles
// (the largest in the awesome-compose and docker-library sets are under 20 KiB and 100 instructions).

/** The Dockerfile's size in bytes (UTF-8). */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;
/** Instructions in the file (ONBUILD triggers run from base images count too). */
export const MAX_INSTRUCTIONS = 2000;
/** FROM instructions. */
export const MAX_STAGES = 100;
/** Characters one expanded word may grow to (`${A}${A}...` doubling through ARGs). */
export const MAX_EXPANSION_CHARS = 256 * 1024;
/** ONBUILD triggers a base image may carry. */
export const MAX_ONBUILD_TRIGGERS = 100;
/** Ports one EXPOSE range may expand to. */
export const MAX_EXPOSED_PORTS = 10000;
