import { describe, expect, it } from 'vitest';
import { explainUplinkError } from '../../../src/uplink/tls-errors.js';

const ctx = {
  url: 'mqtts://broker.example:8883',
  serverName: 'broker.example',
  paths: { ca: '/etc/iq-hub/ca.crt', cert: '/etc/iq-hub/hub.crt', key: '/etc/iq-hub/hub.key' },
};

describe('uplink connection errors in words', () => {
  it("a broker certificate the hub's CA did not issue: names the CA file, the broker and the settings to fix", () => {
    for (const code of [
      'SELF_SIGNED_CERT_IN_CHAIN',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
    ]) {
      const why = explainUplinkError(code, ctx);
      expect(why, code).toContain('the CA in /etc/iq-hub/ca.crt did not issue');
      expect(why, code).toContain('broker.example:8883');
      expect(why, code).toContain('uplink.caFile');
      expect(why, code).toContain('iqhub provision install --ca');
    }
  });

  it('a wrong name: names the name and the settings', () => {
    const why = explainUplinkError('ERR_TLS_CERT_ALTNAME_INVALID', { ...ctx, serverName: 'mqtt.internal' });
    expect(why).toContain('mqtt.internal');
    expect(why).toContain('uplink.serverName');
  });

  it("the broker refusing the hub's certificate: names the hub's certificate file", () => {
    const why = explainUplinkError('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', ctx);
    expect(why).toContain('/etc/iq-hub/hub.crt');
  });

  it('clock, network and ACL problems say what to check', () => {
    expect(explainUplinkError('CERT_NOT_YET_VALID', ctx)).toMatch(/clock/);
    expect(explainUplinkError('ECONNREFUSED', ctx)).toMatch(/uplink\.url/);
    expect(explainUplinkError('ENOTFOUND', ctx)).toMatch(/does not resolve/);
    expect(explainUplinkError(135, ctx)).toMatch(/ACL/);
  });

  it('says nothing it does not know: an unknown code or none', () => {
    expect(explainUplinkError('SOMETHING_NEW', ctx)).toBeUndefined();
    expect(explainUplinkError(null, ctx)).toBeUndefined();
  });
});
