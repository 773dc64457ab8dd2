"""The audit log auditors read: hash-chained decision records with signed checkpoints.

The policy gate writes it (``AuditLog``); auditors verify it offline with the aggregator's
public key (``verify_audit_log``) and read it (``read_decisions``, ``decisions_table``),
through ``fedsilo audit verify|show``.
"""

from ._chain import FORMAT as FORMAT
from ._chain import RecordKind as RecordKind
from ._chain import record_hash as record_hash
from ._log import AuditLog as AuditLog
from ._log import AuditLogClosed as AuditLogClosed
from ._render import decisions_table as decisions_table
from ._render import read_decisions as read_decisions
from ._render import report_table as report_table
from ._verify import AuditVerificationError as AuditVerificationError
from ._verify import TamperKind as TamperKind
from ._verify import VerifyReport as VerifyReport
from ._verify import verify_audit_log as verify_audit_log

__all__ = [
    "FORMAT",
    "AuditLog",
    "AuditLogClosed",
    "AuditVerificationError",
    "RecordKind",
    "TamperKind",
    "VerifyReport",
    "decisions_table",
    "read_decisions",
    "record_hash",
    "report_table",
    "verify_audit_log",
]
