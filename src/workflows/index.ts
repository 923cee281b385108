// Every workflow the workers register. Deterministic code only: no I/O, no Date, no Node built-ins.
export { createProject, deleteProject } from './projects';
