/** The ZigBee driver: the Bearer port over real zigbee-herdsman (Z-Stack). Import lazily from the composition root. */
export {
  type BackupInfo,
  createZigbeeBearer,
  type RestoreInfo,
  type ZigbeeBearer,
  type ZigbeeBearerOptions,
  type ZigbeeCounters,
} from './bearer.js';
export { encodeModelId, LINK_CLUSTER_ID, MANUFACTURER_CODE, MODEL_ID_PREFIX, parseModelId } from './link-cluster.js';
