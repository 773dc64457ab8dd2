"""The privacy ledger: every silo's charges, append-only, hash-chained, signed, in SQLite.

``verify_ledger`` checks a ledger file read-only, with the writer's public key and the
signed head published outside the file.

The hub keeps one: its policy gate asks ``PrivacyLedger.would_exceed`` before an update
is aggregated, charges the admitted update, and acknowledges it when the round closes.
``fedsilo ledger show`` renders it with ``ledger_table`` / ``ledger_report``;
``compare_ledgers`` says whether the hub's and a silo's ledger agree on the silo's charges.
"""

from ._agree import LedgerAgreement as LedgerAgreement
from ._agree import compare_ledgers as compare_ledgers
from ._chain import FORMAT as FORMAT
from ._chain import ChainHead as ChainHead
from ._chain import CheckpointRow as CheckpointRow
from ._chain import LedgerIntegrityError as LedgerIntegrityError
from ._chain import LedgerRow as LedgerRow
from ._ledger import BudgetCheck as BudgetCheck
from ._ledger import Charge as Charge
from ._ledger import LedgerConflict as LedgerConflict
from ._ledger import PrivacyLedger as PrivacyLedger
from ._ledger import SpendProjection as SpendProjection
from ._ledger import release_key as release_key
from ._ledger import run_name as run_name
from ._render import describe_mechanism as describe_mechanism
from ._render import ledger_report as ledger_report
from ._render import ledger_table as ledger_table
from ._verify import LedgerReport as LedgerReport
from ._verify import verify_ledger as verify_ledger

__all__ = [
    "FORMAT",
    "BudgetCheck",
    "ChainHead",
    "Charge",
    "CheckpointRow",
    "LedgerAgreement",
    "LedgerConflict",
    "LedgerIntegrityError",
    "LedgerReport",
    "LedgerRow",
    "PrivacyLedger",
    "SpendProjection",
    "compare_ledgers",
    "describe_mechanism",
    "ledger_report",
    "ledger_table",
    "release_key",
    "run_name",
    "verify_ledger",
]
