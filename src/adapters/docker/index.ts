export * from './types.js';
export { DockerEngine, createDockerEngine, OWNER_RE, type DockerEngineOptions } from './engine.js';
export { resolveDockerHost, dockerodeOptions, DEFAULT_DOCKER_HOST } from './host.js';
export { launchContainer, publishedPort, type Launched } from './launch.js';
export { toEngineError } from './errors.js';
