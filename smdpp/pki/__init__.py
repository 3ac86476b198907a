"""The RSP PKI of the SM-DP+ (SGP.22 2.6.7, 4.5, 5.6.3; SGP.26 test certificates).

* :mod:`.ecdsa`  ECDSA in the plain r||s form of SGP.22 / BSI TR-03111, EC points
* :mod:`.oids`   role policy OIDs and the permittedEins extension
* :mod:`.eid`    EID check digits
* :mod:`.certificate`  one certificate: accessors, profile checks; CI, DPauth / DPpb / DPtls
* :mod:`.chain`  the eUICC chain: CI -> [CI SubCA] -> EUM -> [EUM SubCA] -> eUICC, EID range
* :mod:`.crl`    CRLs: loading and verifying them, revocation lookup, issuing them
* :mod:`.folder` one folder of certs/: certificates and keys by content, other files skipped
* :mod:`.identities` SM-DP+ identities (CI, SM-DP+ OID) and which one is served per CI
* :mod:`.store`  the SM-DP+ certificate store (CIs, DP credentials per CI, CRLs, TLS)
* :mod:`.issue`  a private test PKI in the SGP.26 file layout
* :mod:`.files`  file modes of keys, certificates and their folders
* :mod:`.cli`    ``smdpp-pki``: create a PKI, issue eUICC identities, revoke certificates
"""
from __future__ import annotations

from smdpp.pki.certificate import verify_smdp_certificate
from smdpp.pki.chain import EuiccIdentity, verify_euicc_chain
from smdpp.pki.crl import CrlError, CrlSet, issue_crl, revoke
from smdpp.pki.ecdsa import public_key_from_point, public_point, sign_plain, verify_plain
from smdpp.pki.eid import eid_is_valid, make_eid
from smdpp.pki.issue import create_test_pki, ensure_test_pki, issue_euicc
from smdpp.pki.store import CertificateStore, DpCredentials, TlsCredential

__all__ = [
    "CertificateStore",
    "CrlError",
    "CrlSet",
    "DpCredentials",
    "EuiccIdentity",
    "TlsCredential",
    "create_test_pki",
    "eid_is_valid",
    "ensure_test_pki",
    "issue_crl",
    "issue_euicc",
    "make_eid",
    "public_key_from_point",
    "public_point",
    "revoke",
    "sign_plain",
    "verify_euicc_chain",
    "verify_plain",
    "verify_smdp_certificate",
]
