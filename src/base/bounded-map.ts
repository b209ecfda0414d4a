/**
 * `map.set(key, value)` as the most recent entry, forgetting the least recently set entries beyond
 * `max`. For what a radio hears from anyone in range (advertisements, addresses, reports): a
 * neighbour who makes up a new device id or address every second must not grow the daemon's memory
 * without end. A Map keeps insertion order, so delete-then-set moves a key to the end.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) break;
    map.delete(oldest.value);
  }
}
