"""The audit log auditors read: hash-chained decision records with signed checkpoints."""

from ._log import AuditLog as AuditLog
from ._log import record_hash as record_hash
from ._verify import AuditVerificationError as AuditVerificationError
from ._verify import VerifyReport as VerifyReport
from ._verify import verify_audit_log as verify_audit_log

__all__ = ["AuditLog", "AuditVerificationError", "VerifyReport", "record_hash", "verify_audit_log"]
