export { type RenderError, type RenderResult, renderArgv } from './render.js';
