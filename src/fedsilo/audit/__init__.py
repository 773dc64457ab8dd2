"""The audit log auditors read: hash-chained decision records with signed checkpoints.

Also the evidence primitives the privacy ledger shares with it: ``TamperKind`` verdicts,
``SignedHead`` (a checkpoint's signed chain head, published outside the file) and the one
place checkpoints are signed (``sign_head``) and checked (``check_head``).

The policy gate writes it (``AuditLog``); auditors verify it offline with the aggregator's
public key (``verify_audit_log``) and read it (``read_decisions``, ``decisions_table``),
through ``fedsilo audit verify|show``.
"""

from ._chain import FORMAT as FORMAT
from ._chain import AuditOperation as AuditOperation
from ._chain import CheckpointRecord as CheckpointRecord
from ._chain import DecisionRecord as DecisionRecord
from ._chain import OperationRecord as OperationRecord
from ._chain import RecordKind as RecordKind
from ._chain import record_hash as record_hash
from ._heads import SignedHead as SignedHead
from ._heads import TamperedError as TamperedError
from ._heads import TamperKind as TamperKind
from ._heads import check_against_published as check_against_published
from ._heads import check_head as check_head
from ._heads import parse_record as parse_record
from ._heads import sign_head as sign_head
from ._heads import strict_kind as strict_kind
from ._log import AuditLog as AuditLog
from ._log import AuditLogClosed as AuditLogClosed
from ._render import decisions_table as decisions_table
from ._render import read_decisions as read_decisions
from ._render import report_table as report_table
from ._verify import AuditVerificationError as AuditVerificationError
from ._verify import VerifyReport as VerifyReport
from ._verify import verify_audit_log as verify_audit_log

__all__ = [
    "FORMAT",
    "AuditLog",
    "AuditLogClosed",
    "AuditOperation",
    "AuditVerificationError",
    "CheckpointRecord",
    "DecisionRecord",
    "OperationRecord",
    "RecordKind",
    "SignedHead",
    "TamperKind",
    "TamperedError",
    "VerifyReport",
    "check_against_published",
    "check_head",
    "decisions_table",
    "parse_record",
    "read_decisions",
    "record_hash",
    "report_table",
    "sign_head",
    "strict_kind",
    "verify_audit_log",
]
