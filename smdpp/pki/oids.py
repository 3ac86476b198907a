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
}
