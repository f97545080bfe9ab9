// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type X509Crypto = Parameters<typeof x509.cryptoProvider.set>[0];

x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Leaf certificates live as long as a sandbox may; the CA a little longer. */
const LEAF_DAYS = 7;

function serial(): string {
  // Positive, 16 bytes: the top bit cleared so DER does not read it as negative.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/**
 * A per-sandbox certificate authority (ECDSA P-256) for intercepting HTTPS to
 * hosts that have a secret bound: the guest trusts it (its certificate is
 * written into the guest), the daemon signs a leaf for each such host on
 * demand. The CA's private key is a non-extractable WebCrypto key held only in
 * this object: never written anywhere, gone when the sandbox is.
 */
export class EgressCA {
  private readonly leaves = new Map<string, Promise<{ cert: string; key: string }>>();

  private constructor(
    private readonly caKey: CryptoKey,
    private readonly caCert: x509.X509Certificate,
    private readonly leafKeyPem: string,
    private readonly leafPublic: CryptoKey,
  ) {}

  static async create(label: string): Promise<EgressCA> {
    const subtle = webcrypto.subtle;
    // The CA key cannot be exported, even by us: it only ever signs.
    const ca = (await subtle.generateKey(ALG, false, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=airlock egress CA ${label}, O=airlock`,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + (LEAF_DAYS + 1) * 86400_000),
      keys: ca,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(ca.publicKey),
      ],
    });
    // One leaf key for every host of this sandbox: it protects only connections the CA already controls.
    const leaf = (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leafPem = pem('PRIVATE KEY', await subtle.exportKey('pkcs8', leaf.privateKey));
    return new EgressCA(ca.privateKey, cert, leafPem, leaf.publicKey);
  }

  /** The CA certificate (PEM) the guest is told to trust. */
  get certificatePem(): string {
    return this.caCert.toString('pem') + '\n';
  }

  /** A certificate and key for `host`, signed by this CA (cached per host). */
  leafFor(host: string): Promise<{ cert: string; key: string }> {
    let p = this.leaves.get(host);
    if (!p) {
      p = this.sign(host);
      this.leaves.set(host, p);
    }
    return p;
  }

  private async sign(host: string): Promise<{ cert: string; key: string }> {
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${isIP(host) ? 'airlock egress' : host}`,
      issuer: this.caCert.subject,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + LEAF_DAYS * 86400_000),
      publicKey: this.leafPublic,
      signingKey: this.caKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: isIP(host) ? 'ip' : 'dns', value: host }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.caCert),
      ],
    });
    return { cert: cert.toString('pem') + '\n', key: this.leafKeyPem };
  }
}
