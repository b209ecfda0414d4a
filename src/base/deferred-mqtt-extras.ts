import { deferMqttExtras } from './deferred-modules.js';

// Imported (before 'mqtt') by the modules that import mqtt: an import's side effects run before
// those of the imports after it, so mqtt's worker timers get their stand-in before mqtt is loaded.
deferMqttExtras();
