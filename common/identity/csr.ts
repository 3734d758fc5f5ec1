// The node (and tsctl) side of certificate issuance: make a key pair here, send only a CSR, keep
// the private key. The CSR's subject is a hint for humans reading logs; the CA ignores it and
// writes the subject from its own decision (control-plane/ca/issue.ts).
import { EC_KEY_ALGORITHM, EC_SIGNING_ALGORITHM, exportPkcs8Pem, type CryptoKey, webcrypto, x509, pemOf } from './x509.js';

export interface NodeKeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** PKCS#8 PEM of the private key, for the caller to write to a 0600 file; never sent anywhere. */
  keyPem: string;
}

export async function generateKeyPair(): Promise<NodeKeyPair> {
  // Extractable only so that the PKCS#8 PEM can be written to the node's own key file.
  const keys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
  return { privateKey: keys.privateKey, publicKey: keys.publicKey, keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** A PKCS#10 request signed by the key, proving to the CA that the requester holds it. */
export async function createCsr(keys: Pick<NodeKeyPair, 'privateKey' | 'publicKey'>, options: { commonNameHint: string }): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [options.commonNameHint] }],
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: EC_SIGNING_ALGORITHM,
  });
  return pemOf(csr);
}
