/** A part of the running hub with a life cycle. The composition root starts them in order and stops them in reverse. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): ComponentStatus;
}

export interface ComponentStatus {
  name: string;
  state: 'starting' | 'running' | 'degraded' | 'stopping' | 'stopped' | 'failed';
  detail?: string;
}
