import { X509Certificate } from 'node:crypto';

/**
 * The reference cloud's one check of a hub's certificate presented inside a message (an OTP-key
 * request, a restore request): it parses, its CN is the hub the message names, it is valid now,
 * and one of the trusted CAs issued it. The certificate, or why it is refused (a sentence that
 * names what failed, never key material).
 */
export function checkHubCertificate(
  pem: string,
  hubId: string,
  cas: readonly X509Certificate[],
  now: number,
): { cert: X509Certificate } | { refused: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return { refused: 'the certificate does not parse' };
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]?.trim();
  if (cn !== hubId) return { refused: `the certificate is for ${cn ?? 'no CN'}, not for hub ${hubId}` };
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
    return { refused: `the certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})` };
  }
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    return { refused: 'the certificate is not issued by a CA this cloud trusts: it does not chain to one' };
  }
  return { cert };
}
