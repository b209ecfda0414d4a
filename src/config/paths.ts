/**
 * Where the config is looked for and the run directory it defaults to, apart from the loader: the
 * CLI finds the control socket without loading Ajv and yaml when there is no config file to read.
 */
export const DEFAULT_CONFIG_PATH = '/etc/iq-hub/config.yaml';
export const DEFAULT_RUN_DIR = '/run/iq-hub';
