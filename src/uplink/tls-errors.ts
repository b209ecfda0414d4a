/**
 * A connection error of the uplink in words a technician can act on: which file to fix, which
 * name, which setting. Node and OpenSSL say `SELF_SIGNED_CERT_IN_CHAIN` or
 * `ERR_TLS_CERT_ALTNAME_INVALID`; the status line, `iqhub diag` and the log say what that means
 * here. The code itself stays in front (searchable); unknown codes get no explanation.
 */

export interface UplinkTlsContext {
  /** uplink.url */
  url: string;
  /** The name the broker's certificate must carry (uplink.serverName, or the URL's host). */
  serverName: string;
  /** The files the uplink connects with (uplink.caFile…, or the installed identity). */
  paths: { ca: string; cert: string; key: string };
}

/** The broker's certificate does not chain to the CA the hub trusts. */
const UNTRUSTED_BROKER = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/** TLS alerts the broker sends when it refuses the hub's own certificate. */
const BROKER_REFUSES_HUB = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
]);

export function explainUplinkError(code: string | number | null, c: UplinkTlsContext): string | undefined {
  if (code === null) return undefined;
  const host = hostOf(c.url);
  const ca = c.paths.ca;
  if (typeof code === 'string' && UNTRUSTED_BROKER.has(code)) {
    return (
      `the broker at ${host} presented a certificate that the CA in ${ca} did not issue: put in ${ca} the CA ` +
      "that issued the broker's certificate (uplink.caFile, or `iqhub provision install --ca FILE`), or point uplink.url at the right broker"
    );
  }
  switch (code) {
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return (
        `the broker's certificate is not issued for the name ${c.serverName}: connect by a name its certificate ` +
        'carries (uplink.url), or set uplink.serverName to that name'
      );
    case 'CERT_HAS_EXPIRED':
      return `the broker's certificate has expired, or this hub's clock is ahead (check the clock: iqhub diag); the broker at ${host} needs a new certificate`;
    case 'CERT_NOT_YET_VALID':
      return "the broker's certificate is not valid yet: this hub's clock is behind (NTP; iqhub diag shows the clock)";
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${host}: check uplink.url (host and port) and that the broker runs`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the name ${host} does not resolve: check uplink.url and the hub's DNS`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${host} cannot be reached: check the network, a firewall, and uplink.url`;
    case 135:
    case 5:
      return `the broker refused the hub (not authorized): its ACL must allow the CN of ${c.paths.cert} on ks/hubs/{hubId}/#`;
  }
  if (typeof code === 'string' && BROKER_REFUSES_HUB.has(code)) {
    return (
      `the broker at ${host} refused this hub's certificate ${c.paths.cert}: it must be issued by a CA the broker ` +
      'trusts and be valid now (iqhub cert shows it); install a good one with `iqhub provision install`'
    );
  }
  return undefined;
}

function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.hostname;
  } catch {
    return url;
  }
}
