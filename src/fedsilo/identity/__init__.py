"""Identity: Ed25519 signing keys, X.509 material for mutual TLS, and digests.

The sidecar holds a silo's signing key and client certificate; the aggregator holds its
own signing key (for audit checkpoints) and server certificate. The trainer never
imports this package.
"""

from ._agreement import WORDS_PER_BLOCK as WORDS_PER_BLOCK
from ._agreement import AgreementKey as AgreementKey
from ._agreement import DecryptionError as DecryptionError
from ._agreement import Keystream as Keystream
from ._agreement import derive_key as derive_key
from ._agreement import keystream_words as keystream_words
from ._agreement import open_sealed as open_sealed
from ._agreement import seal as seal
from ._crypto import SignatureError as SignatureError
from ._crypto import Signer as Signer
from ._crypto import SigningKey as SigningKey
from ._crypto import VerifyKey as VerifyKey
from ._crypto import constant_time_equal as constant_time_equal
from ._crypto import load_signing_key as load_signing_key
from ._crypto import save_signing_key as save_signing_key
from ._crypto import sha256_digest as sha256_digest
from ._crypto import write_private_file as write_private_file
from ._files import CA_CERT_FILE as CA_CERT_FILE
from ._files import PUBLIC_KEY_FILE as PUBLIC_KEY_FILE
from ._files import SIGNING_KEY_FILE as SIGNING_KEY_FILE
from ._files import TLS_CERT_FILE as TLS_CERT_FILE
from ._files import TLS_KEY_FILE as TLS_KEY_FILE
from ._files import SiloIdentity as SiloIdentity
from ._files import read_identity as read_identity
from ._files import read_tls as read_tls
from ._files import renew_tls as renew_tls
from ._files import write_identity as write_identity
from ._pki import RENEW_AFTER_FRACTION as RENEW_AFTER_FRACTION
from ._pki import CertificateAuthority as CertificateAuthority
from ._pki import CertificateExpired as CertificateExpired
from ._pki import IssuerMismatch as IssuerMismatch
from ._pki import TlsCredentials as TlsCredentials
from ._pki import ca_bundle as ca_bundle
from ._pki import certificate_common_name as certificate_common_name
from ._pki import certificate_expiry as certificate_expiry
from ._pki import certificate_fingerprint as certificate_fingerprint
from ._pki import check_certificate_current as check_certificate_current
from ._pki import check_key_pair as check_key_pair
from ._pki import renewal_due as renewal_due
from ._pki import verify_issued_by as verify_issued_by

__all__ = [
    "CA_CERT_FILE",
    "PUBLIC_KEY_FILE",
    "RENEW_AFTER_FRACTION",
    "SIGNING_KEY_FILE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "WORDS_PER_BLOCK",
    "AgreementKey",
    "CertificateAuthority",
    "CertificateExpired",
    "DecryptionError",
    "IssuerMismatch",
    "Keystream",
    "SignatureError",
    "Signer",
    "SigningKey",
    "SiloIdentity",
    "TlsCredentials",
    "VerifyKey",
    "ca_bundle",
    "certificate_common_name",
    "certificate_expiry",
    "certificate_fingerprint",
    "check_certificate_current",
    "check_key_pair",
    "constant_time_equal",
    "derive_key",
    "keystream_words",
    "load_signing_key",
    "open_sealed",
    "read_identity",
    "read_tls",
    "renew_tls",
    "renewal_due",
    "save_signing_key",
    "seal",
    "sha256_digest",
    "verify_issued_by",
    "write_identity",
    "write_private_file",
]
