"""A local AWS KMS for the KMS signer's tests: moto's server, plus the one
KMS feature moto does not implement yet and every Ethereum KMS signer
needs: Sign with MessageType=DIGEST (an Ethereum signing hash is
keccak-256, so KMS must sign the 32 bytes as given instead of hashing them
again). Everything else — keys, GetPublicKey, request parsing — is moto's.

Run by .tools/bin/kms-emulator (scripts/install-tools) with moto's options,
e.g. `kms-emulator -H 127.0.0.1 -p 5000`.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.kms import responses
from moto.server import main

_sign = responses.KmsResponse.sign


def _sign_digest(self):
    if self._get_param("MessageType") != "DIGEST":
        return _sign(self)
    message = self._get_param("Message")
    digest = message if isinstance(message, bytes) else base64.b64decode(message)
    algorithm = self._get_param("SigningAlgorithm")
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    if algorithm != "ECDSA_SHA_256" or len(digest) != 32:
        return _sign(self)
    private = key.private_key.private_key
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        return _sign(self)
    signature = private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode(),
            "SigningAlgorithm": algorithm,
        }
    )


responses.KmsResponse.sign = _sign_digest

if __name__ == "__main__":
    sys.exit(main())
