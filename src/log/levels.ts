/**
 * The levels a config may set (log.level). Apart from the logger, so that reading a config — as
 * `iqhub status` does to find the control socket — does not load pino.
 */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
