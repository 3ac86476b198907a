"""Object identifiers of the RSP PKI (SGP.22 4.5.2.1 and Annex H, SGP.26).

GSMA's arc is ``2.23.146`` (joint-iso-itu-t / international-organizations /
gsma); RSP objects live under ``id-rsp`` = 2.23.146.1.  Certificate objects
are ``id-rsp-cert-objects`` = 2.23.146.1.2, with the roles below
``id-rspRole`` = 2.23.146.1.2.1: each RSP certificate carries exactly one of
them as its certificate policy (SGP.22 4.5.2.1.0.x).
"""
from __future__ import annotations

from cryptography import x509

#: id-rsp-cert-objects (SGP.22 Annex H).
ID_RSP_CERT_OBJECTS = x509.ObjectIdentifier("2.23.146.1.2")
#: id-rspRole: parent of the certificate-policy OIDs that name a certificate's role.
ID_RSP_ROLE = x509.ObjectIdentifier("2.23.146.1.2.1")

#: id-rspRole-ci: GSMA Certificate Issuer (root) certificate.
ID_RSP_ROLE_CI = x509.ObjectIdentifier("2.23.146.1.2.1.0")
#: id-rspRole-euicc: eUICC certificate (CERT.EUICC.ECDSA).
ID_RSP_ROLE_EUICC = x509.ObjectIdentifier("2.23.146.1.2.1.1")
#: id-rspRole-eum: eUICC Manufacturer certificate (CERT.EUM.ECDSA).
ID_RSP_ROLE_EUM = x509.ObjectIdentifier("2.23.146.1.2.1.2")
#: id-rspRole-dp-tls: SM-DP+ TLS server certificate (CERT.DP.TLS).
ID_RSP_ROLE_DP_TLS = x509.ObjectIdentifier("2.23.146.1.2.1.3")
#: id-rspRole-dp-auth: SM-DP+ authentication certificate (CERT.DPauth.ECDSA).
ID_RSP_ROLE_DP_AUTH = x509.ObjectIdentifier("2.23.146.1.2.1.4")
#: id-rspRole-dp-pb: SM-DP+ profile binding certificate (CERT.DPpb.ECDSA).
ID_RSP_ROLE_DP_PB = x509.ObjectIdentifier("2.23.146.1.2.1.5")

# SGP.22 v3 (Annex H) keeps the role OIDs above for the v2 chains ("Variant O",
# where it calls them id-rspRole-*-v2) and adds a tree of roles below id-rspRole-ci
# for the chains with sub-CAs ("Variants Ov3, A, B, C", SGP.22 v3 4.5.2.0):
# CI SubCA {ci 0}, EUM {ciSubCa 0}, EUM SubCA {eum 0}, eUICC {eumSubCa 0},
# SM-DP+ roles below {ciSubCa 1}.

#: id-rspRole-ciSubCa (v3): a CI sub-CA between the CI and the EUM / SM-DP+ certificates.
ID_RSP_ROLE_CI_SUBCA = x509.ObjectIdentifier("2.23.146.1.2.1.0.0")
#: id-rspRole-eum (v3 variants).
ID_RSP_ROLE_EUM_V3 = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.0")
#: id-rspRole-eumSubCa (v3): an EUM sub-CA, issued by the EUM, issuing eUICC certificates.
ID_RSP_ROLE_EUM_SUBCA = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.0.0")
#: id-rspRole-euicc (v3 variants).
ID_RSP_ROLE_EUICC_V3 = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.0.0.0")
#: id-rspRole-dp-tls (v3 variants).
ID_RSP_ROLE_DP_TLS_V3 = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.1.0")
#: id-rspRole-dp-auth (v3 variants).
ID_RSP_ROLE_DP_AUTH_V3 = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.1.1")
#: id-rspRole-dp-pb (v3 variants).
ID_RSP_ROLE_DP_PB_V3 = x509.ObjectIdentifier("2.23.146.1.2.1.0.0.1.2")

#: Policies accepted per role: the v2 ("Variant O") OID and its v3 counterpart.
EUICC_POLICIES = frozenset({ID_RSP_ROLE_EUICC, ID_RSP_ROLE_EUICC_V3})
EUM_POLICIES = frozenset({ID_RSP_ROLE_EUM, ID_RSP_ROLE_EUM_V3})
DP_POLICIES: dict[str, frozenset[x509.ObjectIdentifier]] = {
    "auth": frozenset({ID_RSP_ROLE_DP_AUTH, ID_RSP_ROLE_DP_AUTH_V3}),
    "pb": frozenset({ID_RSP_ROLE_DP_PB, ID_RSP_ROLE_DP_PB_V3}),
    "tls": frozenset({ID_RSP_ROLE_DP_TLS, ID_RSP_ROLE_DP_TLS_V3}),
}

#: The GSMA ``permittedEins`` certificate extension of the EUM certificate
#: (SGP.22 v3 4.5.2.1.0.2; {id-rsp-cert-objects 2 0}):
#: ``PermittedEins ::= SEQUENCE OF PrintableString``, each string an EIN
#: (EUM Identification Number, SGP.29) that the EIDs of the EUM's eUICCs start with.
ID_RSP_PERMITTED_EINS = x509.ObjectIdentifier("2.23.146.1.2.2.0")

#: The SM-DP+ OID of the SGP.26 test certificates (subjectAltName registeredID);
#: 2.999 is the ITU-T X.660 example arc, so it never names a real SM-DP+.
DEFAULT_SMDP_OID = x509.ObjectIdentifier("2.999.10")
#: The registeredID in the subjectAltName of the SGP.26 test CI.
DEFAULT_CI_OID = x509.ObjectIdentifier("2.999.1")

#: Role name -> certificate policy OID, for messages and for callers that pick a role by name.
ROLE_POLICIES: dict[str, x509.ObjectIdentifier] = {
    "ci": ID_RSP_ROLE_CI,
    "euicc": ID_RSP_ROLE_EUICC,
    "eum": ID_RSP_ROLE_EUM,
    "dp-tls": ID_RSP_ROLE_DP_TLS,
    "dp-auth": ID_RSP_ROLE_DP_AUTH,
    "dp-pb": ID_RSP_ROLE_DP_PB,
    "ci-subca": ID_RSP_ROLE_CI_SUBCA,
    "eum-subca": ID_RSP_ROLE_EUM_SUBCA,
}
